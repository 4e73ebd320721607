"""The runner: shared preparation (BM25-mined triples cached, a rerun charged the original cost), and whole runs
of the tiny model (determinism, the NaN guard, checkpoints kept or not, bad input found mid-run)."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest
import torch

from benchmark.common import network
from benchmark.common.errors import UsageError
from benchmark.data.collections import training_collection
from benchmark.data.prepare import mined_triples
from benchmark.encoder import EncoderConfig
from benchmark.measurement.phases import Meter
from benchmark.run.config import DataConfig, RunConfig
from benchmark.run.runner import run
from benchmark.training.loop import TrainingConfig
from regimes import Regime
from regimes.self_distillation import SelfDistillation
from tests.benchmark.conftest import write_beir


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
    from benchmark.data.collections import evaluation_collection
    from benchmark.evaluation.systems import EvaluationEnvironment

    collection = evaluation_collection(str(tiny_beir))
    meters = [Meter(torch.device("cpu"), energy=False) for _ in range(2)]
    for number, meter in enumerate(meters):
        env = EvaluationEnvironment(collection, tmp_path / "cache", meter, tmp_path / f"work-{number}")
        env.dense(tiny_encoder, "initial", reusable=True)
    [built], [replayed] = meters[0].records, meters[1].records
    assert (built.phase, built.reused) == ("index", False)
    assert (replayed.phase, replayed.reused, replayed.cell) == ("index", True, "initial")
    assert replayed.wall_s == built.wall_s and replayed.count == built.count == 12


# --- whole runs of the tiny model: determinism, the NaN guard, checkpoints, bad input mid-run ---------------
class NaNLoss(SelfDistillation):
    """Self-distillation whose loss turns NaN at its third step."""

    name = "nan-loss"

    def __init__(self, **settings) -> None:
        super().__init__(**settings)
        self.calls = 0

    def loss(self, embeddings, batch):
        self.calls += 1
        loss = super().loss(embeddings, batch)
        return loss * math.nan if self.calls >= 3 else loss


class NoBatches(SelfDistillation):
    """A regime whose batch order leaves nothing to train on."""

    name = "no-batches"

    def batches(self, triples, batch_size, seed):
        yield from ()


TIMINGS = {"run_id", "train_wall_to_best_s", "reused_phases"} | {
    f"{prefix}{name}"
    for prefix in ("charged_", "speedup_")
    for name in (
        "wall_s",
        "cpu_s",
        "gpu_hours",
        "energy_kwh",
        "co2_kg",
        "wall",
        "energy",
        "wall_vs_full",
        "energy_vs_full",
    )
}


def tiny_config(folder: Path, model: Path, out: Path, regimes: list[Regime], **overrides) -> RunConfig:
    return RunConfig(
        regimes=tuple(regime.label for regime in regimes),
        data_fractions=(1.0,),
        data=DataConfig(dataset=str(folder), negatives_per_positive=2),
        encoder=EncoderConfig(model=str(model), precision="fp32", device="cpu", max_doc_length=32, max_query_length=16),
        training=TrainingConfig(batch_size=2, learning_rate=3e-3, validate_every=2),
        out=out,
        cache_dir=out / "cache",
        energy=False,
        **overrides,
    )


@pytest.fixture(scope="module")
def isolated(tmp_path_factory):
    """A private ir_datasets home; the network probe's switches are undone afterwards."""
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IR_DATASETS_HOME", str(tmp_path_factory.mktemp("ir_datasets_home")))
        patch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)
        for name in ("HF_HUB_OFFLINE", *network.IR_DATASETS_OFFLINE):
            if name in os.environ:
                patch.setenv(name, os.environ[name])
            else:
                patch.delenv(name, raising=False)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield tmp_path_factory.mktemp("runs")
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def two_runs(isolated, tiny_model_dir):
    """The same config twice (the second keeping every checkpoint): a regime whose loss turns NaN, then
    self-distillation."""
    folder = write_beir(isolated / "beir")
    statuses = []
    for run_id, keep in (("first", False), ("second", True)):
        regimes = [NaNLoss(), SelfDistillation()]
        config = tiny_config(folder, tiny_model_dir, isolated, regimes, run_id=run_id, keep_checkpoints=keep)
        statuses.append(run(config, regimes, ["run"]))
    return isolated / "first", isolated / "second", statuses


def rows(path: Path, without: set[str] = frozenset()) -> list[dict]:
    with open(path, newline="") as stream:
        return [{k: v for k, v in row.items() if k not in without} for row in csv.DictReader(stream)]


def test_same_seed_and_config_give_bitwise_identical_metrics(two_runs):
    """Two runs of one config on a CPU: every metric, p-value, curve point and weight is identical, bit for bit
    (results.csv holds floats as Python's shortest round-trip repr, so equal text is equal bits)."""
    first, second, _ = two_runs
    assert rows(first / "results.csv", TIMINGS) == rows(second / "results.csv", TIMINGS)
    assert rows(first / "curves.csv", {"elapsed_s"}) == rows(second / "curves.csv", {"elapsed_s"})
    # training moved the weights (the kept checkpoints differ), so the comparison means something; the selected
    # model may still be the initial one, which competes at step 0
    kept = sorted((second / "cells").rglob("self-distillation*/checkpoints/step-*/model.safetensors"))
    assert len({path.read_bytes() for path in kept}) >= 2
    for regime in ("nan-loss", "self-distillation"):
        weights = Path("models") / regime / "model.safetensors"
        assert (first / weights).read_bytes() == (second / weights).read_bytes()


def test_a_non_finite_loss_stops_that_regime_only_and_the_run_exits_1(two_runs):
    """The NaN regime's row says why it stopped, on one line; the next regime still trains; exit status 1."""
    first, _, statuses = two_runs
    assert statuses == [1, 1]
    by_system = {row["system"]: row for row in rows(first / "results.csv")}
    assert by_system["nan-loss"]["status"] == "stopped: non-finite loss (nan) at step 3"
    assert by_system["nan-loss"]["steps"] == "2"
    assert by_system["self-distillation"]["status"] == "ok"
    assert by_system["self-distillation"]["examples_consumed"] == by_system["self-distillation"]["examples_budget"]
    assert {row["status"] for name, row in by_system.items() if name in ("bm25", "initial")} == {"ok"}
    manifest = json.loads((first / "manifest.json").read_text())
    assert [r["status"] for r in manifest["regimes"]] == [by_system["nan-loss"]["status"], "ok"]


def test_only_the_selected_checkpoint_is_kept_unless_asked(two_runs):
    """By default a cell keeps its selected model alone; --keep-checkpoints keeps every validated one as well."""
    first, second, _ = two_runs
    assert not list(first.glob("cells/*/checkpoints"))
    assert sorted(p.name for p in first.glob("cells/*/*")) == ["cell.json", "cell.json", "started.json", "started.json"]
    curve = [row for row in rows(second / "curves.csv") if row["regime"] == "self-distillation"]
    [kept] = second.glob("cells/self-distillation*/checkpoints")
    assert sorted(p.name for p in kept.iterdir()) == sorted(f"step-{row['step']}" for row in curve[1:])
    assert all((p / "model.safetensors").exists() for p in kept.iterdir())
    phases = rows(second / "phases.csv")
    saves = [p for p in phases if p["phase"] == "save-checkpoint"]
    assert saves and all(p["charged_to"] == "" for p in saves)  # saving is not a regime's cost


def test_a_regime_with_no_batch_stops_the_run_keeping_finished_cells(isolated, tiny_model_dir):
    """Bad input found mid-run is a UsageError; the cells finished before it stay for a resume."""
    folder = write_beir(isolated / "beir-no-batch")
    regimes = [SelfDistillation(), NoBatches()]
    config = tiny_config(folder, tiny_model_dir, isolated, regimes, run_id="no-batch")
    with pytest.raises(UsageError, match=r"no-batches got no batch from its \d+ budget triples at data fraction 1.0"):
        run(config, regimes, ["run"])
    directory = isolated / "no-batch"
    assert [p.parent.name.split("_")[0] for p in directory.glob("cells/*/cell.json")] == ["self-distillation"]
    assert not (directory / "results.csv").exists()
    assert json.loads((directory / "manifest.json").read_text())["state"] == "running"


def test_bad_input_before_any_cell_leaves_no_folder(isolated, tiny_model_dir):
    """Nothing finished, nothing kept: the run's own new folder is removed again."""
    folder = write_beir(isolated / "beir-bad-eval")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq7\tghost\t1\n")
    config = tiny_config(folder, tiny_model_dir, isolated, [SelfDistillation()], run_id="bad-eval")
    with pytest.raises(UsageError, match=r"test.tsv, line 2: document 'ghost' is not in corpus.jsonl"):
        run(config, [SelfDistillation()], ["run"])
    assert not (isolated / "bad-eval").exists()


def test_planned_cells_leave_out_the_seeds_a_cell_does_not_train():
    """A preset's fewer seeds (``seeds_by_cell``) drop those cells, the --tune points of a tuned system included."""
    from benchmark.training.seeds import planned_cells
    from benchmark.training.tuning import parse_specs
    from regimes import REGISTRY

    spec = "self-distillation:target=0.1|0.5"
    config = RunConfig(
        regimes=("teacher-distillation",),
        data_fractions=(0.135, 1.0),
        seeds=(1, 2),
        fractions_by_regime=((spec, (0.135,)),),
        seeds_by_cell=(("teacher-distillation", 0.135, (1,)), (spec, 0.135, (1,))),
        tune=(spec,),
    )
    regimes, specs = [REGISTRY["teacher-distillation"]()], parse_specs([spec])
    first = [cell.id for cell, _ in planned_cells(regimes, specs, config, 1)]
    second = [cell.id for cell, _ in planned_cells(regimes, specs, config, 2)]
    assert len(first) == 4 and any("f=0.135" in cell for cell in first)
    assert second == ["teacher-distillation|f=1.0|seed=2"]
