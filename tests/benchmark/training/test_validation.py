"""Validation: dense retrieval over the whole validation corpus (no injected pools), and how that corpus is made
(the whole corpus when small; else positives, BM25 and initial-encoder top-k and a seeded random sample)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmark.data.budget import split_validation
from benchmark.data.collections import training_collection
from benchmark.data.prepare import mined_triples
from benchmark.evaluation.systems import initial_rankings
from benchmark.measurement.phases import Meter
from benchmark.run.config import DataConfig, RunConfig
from benchmark.training.validation import CorpusSettings, ValidationSet, build_validation_set, validation_set
from tests.benchmark.conftest import DOCUMENTS, QUERIES

STATINS = f"{DOCUMENTS['d12'][0]} {DOCUMENTS['d12'][1]}"


def test_a_distractor_anywhere_in_the_corpus_can_outrank_the_positive(tiny_encoder):
    """The positive is ranked against every validation document: a copy of the query, not judged relevant,
    comes first and the score drops to 1 / log2(3), as ir_measures' nDCG@10 has it."""
    queries, qrels = {"q7": QUERIES["q7"]}, {"q7": {"d12": 1}}
    alone = ValidationSet(queries, qrels, {"d12": STATINS})
    assert alone.score(tiny_encoder) == 1.0
    distracted = ValidationSet(queries, qrels, {"d12": STATINS, "copy": QUERIES["q7"]})
    assert distracted.score(tiny_encoder) == pytest.approx(1 / math.log2(3))


def test_no_queries_score_nan(tiny_encoder):
    assert math.isnan(ValidationSet({}, {}, {"d12": STATINS}).score(tiny_encoder))


def fixed_rankings(ranked: dict[str, list[str]], calls: list):
    def rankings(queries, depth):
        calls.append((sorted(queries), depth))
        return {q: ranked[q][:depth] for q in queries}

    return rankings


def test_a_small_corpus_is_validated_whole(tiny_beir):
    """At or below the threshold every document is in the validation corpus and no ranking is asked for."""
    collection = training_collection(str(tiny_beir))
    calls: list = []
    never = fixed_rankings({}, calls)
    built = build_validation_set(
        collection, {"q1": QUERIES["q1"]}, {"q1": {"d1": 1}}, CorpusSettings(2, 1, 12), 0, never, never
    )
    assert sorted(built.doc_texts) == sorted(DOCUMENTS)
    assert built.doc_texts["d12"] == STATINS
    assert calls == [] and built.composition == {}
    assert "whole corpus (12 documents)" in built.description


def test_a_larger_corpus_holds_positives_both_top_ks_and_a_seeded_sample(tiny_beir):
    """Each source adds only documents not already in; the random sample is seeded and drawn from the rest."""
    collection = training_collection(str(tiny_beir))
    queries = {"q1": QUERIES["q1"], "q2": QUERIES["q2"]}
    qrels = {"q1": {"d1": 1, "d2": 1, "d5": 0}, "q2": {"d3": 1}}
    calls: list = []
    bm25 = fixed_rankings({"q1": ["d1", "d4", "d6"], "q2": ["d4", "d3", "d9"]}, calls)
    dense = fixed_rankings({"q1": ["d7", "d1", "d8"], "q2": ["d3", "d7", "d10"]}, calls)
    settings = CorpusSettings(depth=2, random_documents=3, whole_corpus_up_to=11)

    def build(seed):
        return build_validation_set(collection, queries, qrels, settings, seed, bm25, dense)

    built = build(0)
    assert calls == [(["q1", "q2"], 2), (["q1", "q2"], 2)]
    chosen = list(built.doc_texts)
    assert chosen[:5] == ["d1", "d2", "d3", "d4", "d7"]  # positives (not d5, graded 0), then BM25's d4, dense d7
    assert built.composition == {
        "judged positives": 3,
        "more from BM25 top-2": 1,
        "more from initial encoder top-2": 1,
        "random others": 3,
    }
    sample = set(chosen[5:])
    assert len(sample) == 3 and not sample & {"d1", "d2", "d3", "d4", "d7"}
    assert list(build(0).doc_texts) == chosen  # seeded
    assert any(set(list(build(seed).doc_texts)[5:]) != sample for seed in range(1, 6))
    assert all(built.doc_texts[d] == " ".join(DOCUMENTS[d]) for d in chosen)  # texts from the docstore
    assert "a validation corpus of 8 of the corpus's 12 documents (3 judged positives" in built.description
    assert "all 2 judged held-out training queries" in built.description


def test_the_runner_builds_it_from_real_bm25_and_the_initial_encoders_index(tiny_beir, tiny_encoder, tmp_path):
    """All judged held-out queries validate; the corpus holds the real BM25 top-k and the initial encoder's top-k
    over the whole corpus (its index built into the cache and measured as a shared phase)."""
    from benchmark.data.bm25 import BM25Index

    config = RunConfig(
        regimes=("self-distillation",),
        data=DataConfig(
            dataset=str(tiny_beir),
            negatives_per_positive=2,
            validation_fraction=0.5,
            validation_depth=2,
            validation_random_documents=1,
            validation_whole_corpus_up_to=4,
        ),
        cache_dir=tmp_path / "cache",
        energy=False,
    )
    collection = training_collection(str(tiny_beir))
    meter = Meter(torch.device("cpu"), energy=False)
    triples, _ = mined_triples(collection, config, meter)
    split = split_validation(triples, 0.5, 42)
    rankings = initial_rankings(collection, tiny_encoder, config.cache_dir, meter)
    built = validation_set(collection, split, triples, config, meter, 42, rankings)
    judged = [q for q in split.validation_queries if any(g > 0 for g in collection.qrels.get(q, {}).values())]
    assert sorted(built.queries) == sorted(judged) and len(judged) >= 2
    for query in judged:
        assert {d for d, g in collection.qrels[query].items() if g > 0} <= set(built.doc_texts)
    bm25 = BM25Index(collection, config.cache_dir).rankings(built.queries, 2)
    assert {d for ranked in bm25.values() for d in ranked} <= set(built.doc_texts)
    doc_ids = sorted(DOCUMENTS)
    docs = tiny_encoder.encode([f"{DOCUMENTS[d][0]} {DOCUMENTS[d][1]}" for d in doc_ids], "doc")
    for query in judged:
        scores = docs @ tiny_encoder.encode([QUERIES[query]], "query")[0]
        top = {doc_ids[i] for i in np.argsort(-scores)[:2]}
        assert top <= set(built.doc_texts), query
    assert built.composition["random others"] == 1
    phases = {(r.phase, r.cell) for r in meter.records}
    assert ("index", "initial") in phases and ("prepare-validation", "seed=42") in phases
