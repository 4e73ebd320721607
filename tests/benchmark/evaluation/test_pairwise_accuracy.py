"""Pairwise accuracy: the share of triples whose positive scores above the negative, ties counting half."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.data.triples import Triple
from benchmark.encoder import EncoderConfig
from benchmark.evaluation.pairwise_accuracy import PHASE, measure, pairwise_accuracy
from benchmark.measurement.phases import Meter
from benchmark.training.context import RegimeContext
from tests.tiny import write_score_file


def test_pairwise_accuracy_by_hand():
    """Margins 2, -1, 0, 0.5: two right, one wrong, one tie -> (2 + 0.5) / 4."""
    assert pairwise_accuracy([2.0, -1.0, 0.0, 0.5]) == pytest.approx(2.5 / 4)
    assert pairwise_accuracy([1.0, 1.0]) == 1.0
    assert pairwise_accuracy([-1.0]) == 0.0
    assert math.isnan(pairwise_accuracy([]))


class FixedEncoder:
    """An encoder whose embeddings are given by hand: one dimension, so sim(q, d) = q * d."""

    def __init__(self, vectors: dict[str, float]) -> None:
        self.vectors = vectors

    def encode(self, texts, kind):
        import numpy as np

        return np.array([[self.vectors[text]] for text in texts])


class Texts:
    queries = {"qa": "qa", "qb": "qb"}

    @staticmethod
    def document_texts(ids):
        return list(ids)

    name = "hand"


def test_measure_initial_and_score_file_teacher(tmp_path):
    """The initial encoder orders 1 of 2 validation triples right; the score file orders both right; a file that
    scores no validation triple is left out (cannot be measured). One phase, charged to no regime."""
    triples = [Triple("qa", "p1", "n1"), Triple("qb", "p2", "n2")]
    encoder = FixedEncoder({"qa": 1.0, "qb": 1.0, "p1": 3.0, "n1": 1.0, "p2": 0.0, "n2": 2.0})
    good = write_score_file(tmp_path / "good.tsv", [(5.0, 1.0, "qa", "p1", "n1"), (2.0, 1.0, "qb", "p2", "n2")])
    other = write_score_file(tmp_path / "other.tsv", [(5.0, 1.0, "qx", "p1", "n1")])
    meter = Meter(torch.device("cpu"), energy=False)
    context = RegimeContext(
        label="",
        cell="pairwise-accuracy|seed=0",
        collection=Texts(),
        triples=triples,
        encoder_config=EncoderConfig(),
        meter=meter,
        cache_dir=tmp_path / "cache",
        seed=0,
        batch_size=2,
        training_triples=[],
    )
    found = measure(encoder, [f"scores:{good}", f"scores:{other}", f"scores:{good}"], context, triples)
    assert found == {"initial": 0.5, f"teacher:scores:{good}": 1.0}
    outer = [r for r in meter.records if r.phase == PHASE]
    assert len(outer) == 1 and outer[0].charged_to == "" and outer[0].count == 2
    assert all(r.charged_to == "" for r in meter.records)
