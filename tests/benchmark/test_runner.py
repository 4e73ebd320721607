"""The runner's shared preparation: BM25-mined triples are cached, and a rerun is charged the original cost."""

from __future__ import annotations

import torch

from benchmark.config import DataConfig, RunConfig
from benchmark.data import training_collection
from benchmark.measure import Meter
from benchmark.runner import mined_triples


def test_mined_triples_are_cached_and_replayed_with_their_original_cost(tiny_beir, tmp_path):
    """The second run reads the triples from the cache and records the first mining's phase, marked reused."""
    config = RunConfig(
        regimes=("self-distillation",),
        data=DataConfig(dataset=str(tiny_beir), negatives_per_positive=2),
        cache_dir=tmp_path / "cache",
        energy=False,
    )
    collection = training_collection(str(tiny_beir))
    first_meter, second_meter = Meter(torch.device("cpu"), energy=False), Meter(torch.device("cpu"), energy=False)
    first, _ = mined_triples(collection, config, first_meter)
    second, _ = mined_triples(collection, config, second_meter)
    assert second == first and len(first) > 0
    [mined] = first_meter.records
    [replayed] = second_meter.records
    assert mined.phase == replayed.phase == "mine"
    assert not mined.reused and replayed.reused
    assert replayed.wall_s == mined.wall_s and replayed.count == mined.count == len(first)


def test_untrained_encoder_index_is_reused_across_runs(tiny_beir, tiny_encoder, tmp_path):
    """The initial encoder's corpus index is built once per corpus; a later run replays its indexing cost."""
    from benchmark.data import evaluation_collection
    from benchmark.evaluation import EvaluationEnvironment

    collection = evaluation_collection(str(tiny_beir))
    meters = [Meter(torch.device("cpu"), energy=False) for _ in range(2)]
    for number, meter in enumerate(meters):
        env = EvaluationEnvironment(collection, tmp_path / "cache", meter, tmp_path / f"work-{number}")
        env.dense(tiny_encoder, "initial", reusable=True)
    [built], [replayed] = meters[0].records, meters[1].records
    assert (built.phase, built.reused) == ("index", False)
    assert (replayed.phase, replayed.reused, replayed.cell) == ("index", True, "initial")
    assert replayed.wall_s == built.wall_s and replayed.count == built.count == 12
