"""Experiment tracking (``--log-with``) through the real CLI on tiny data: TensorBoard's own reader finds every cell's
loss, learning-rate and nDCG@10 series, the phases' costs and the config; off, nothing is written or imported; a
tracker that is not installed is refused in one line before any work."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from benchmark.measurement import tracking
from benchmark.measurement.phases import PhaseRecord
from tests.no_network import block_network
from tests.test_cli import TIMING_COLUMNS, assert_one_line_error, cli, finished_cells, read_rows, tiny_setup

__all__ = ["tiny_setup"]  # the module-scoped fixture, shared with tests/test_cli.py

pytest.importorskip("tensorboard", reason="pip install tensorboard (in the test extra)")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

TWO_CELLS = ["--regimes", "self-distillation,teacher-distillation"]  # after TINY_RUN's --regimes all: wins

# Prints, after the run, which tracker modules the process imported.
IMPORTS_REPORTED = """
import sys
from benchmark.run.cli import main
status = main(sys.argv[1:])
trackers = ("tensorboard", "tensorboardX", "wandb", "mlflow")
print("imported:", sorted(m for m in sys.modules if m.split(".")[0] in trackers or m == "torch.utils.tensorboard"))
sys.exit(status)
"""


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in the event files of ``folder``, as TensorBoard reads them: tag -> [(step, value)]."""
    reader = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every point
    reader.Reload()
    return {tag: [(event.step, event.value) for event in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}


def hyperparameters(folder: Path) -> dict:
    """The hyper-parameters TensorBoard's HParams dashboard shows for the run (torch writes them in a subfolder)."""
    [events] = [path for path in folder.glob("*/events.out.tfevents.*")]
    reader = EventAccumulator(str(events.parent))
    reader.Reload()
    content = reader.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    values = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return {
        name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind")) for name, value in values.items()
    }


@pytest.fixture(scope="module")
def tracked_and_plain(tiny_setup, tmp_path_factory) -> tuple[Path, Path, str, str]:
    """The same tiny two-cell run with ``--log-with tensorboard`` (on a machine without network) and without."""
    arguments, env = tiny_setup
    base = tmp_path_factory.mktemp("tracking")
    out = base / "out"
    offline = {**env, "PYTHONPATH": str(block_network(base / "no-network"))}
    tracked = cli(
        "run",
        *arguments,
        *TWO_CELLS,
        "--out",
        str(out),
        "--run-id",
        "tracked",
        "--log-with",
        "tensorboard",
        env=offline,
    )
    assert tracked.returncode == 0, tracked.stderr[-3000:]
    plain = subprocess.run(
        [sys.executable, "-c", IMPORTS_REPORTED, "run", *arguments, *TWO_CELLS, "--out", str(out), "--run-id", "plain"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
    )
    assert plain.returncode == 0, plain.stderr[-3000:]
    return out / "tracked", out / "plain", tracked.stdout, plain.stdout


def test_tensorboard_holds_every_cells_steps_validations_and_config(tracked_and_plain):
    """Per cell: one loss, learning-rate and examples point per step, one nDCG@10 point per validation (the initial
    weights' at step 0), equal to curves.csv; the config as hyper-parameters; no cell's series in another's."""
    run, _, _, _ = tracked_and_plain
    folder = run / tracking.FOLDER / "tensorboard"
    series = scalars(folder)
    trained = {row["system"]: row for row in read_rows(run / "results.csv") if row["examples_consumed"]}
    assert set(trained) == {"self-distillation", "teacher-distillation"}
    cells = finished_cells(run)
    assert len(cells) == 2
    curves = read_rows(run / "curves.csv")
    namespaces = set()
    for cell_id in cells:
        name = cell_id.split("|")[0]
        row = trained[name]
        namespace = tracking.clean(cell_id)
        namespaces.add(namespace)
        steps = int(row["steps"])
        assert steps == 6
        for value in ("loss", "learning_rate", "examples"):
            assert [step for step, _ in series[f"{namespace}/train/{value}"]] == list(range(1, steps + 1))
        assert all(math.isfinite(loss) for _, loss in series[f"{namespace}/train/loss"])
        assert all(rate > 0 for _, rate in series[f"{namespace}/train/learning_rate"])
        assert series[f"{namespace}/train/examples"][-1][1] == int(row["examples_consumed"])
        curve = [point for point in curves if point["regime"] == name]
        validations = series[f"{namespace}/validation/ndcg_at_10"]
        assert len(validations) == len(curve) == 4  # step 0, then every 2 of 6 steps
        for (step, score), point in zip(validations, curve, strict=True):
            assert step == int(point["step"])
            assert score == pytest.approx(float(point["ndcg_at_10"]), abs=1e-6)  # float32 in the event file
        assert [value for _, value in series[f"{namespace}/validation/examples"]] == [
            float(point["examples_seen"]) for point in curve
        ]
    assert len(namespaces) == 2
    # the two cells' series are apart: every training series belongs to one of them
    assert {tag.split("/")[0] for tag in series if "/train/" in tag or "/validation/" in tag} == namespaces

    config = json.loads((run / "manifest.json").read_text())["config"]
    logged = hyperparameters(folder)
    assert logged["training.batch_size"] == config["training"]["batch_size"] == 2
    assert logged["training.learning_rate"] == pytest.approx(3e-3)
    assert logged["encoder.max_doc_length"] == 32
    assert json.loads(logged["regimes"]) == ["self-distillation", "teacher-distillation"]
    assert json.loads(logged["log_with"]) == ["tensorboard"]


def test_tensorboard_holds_each_phases_costs(tracked_and_plain):
    """Every phase of phases.csv, as it ended, under its cell (``shared`` when charged to none): one point per
    occurrence, with its wall-clock."""
    run, _, _, _ = tracked_and_plain
    series = scalars(run / tracking.FOLDER / "tensorboard")
    phases = read_rows(run / "phases.csv")
    names = tracking.Tracking()
    expected: dict[str, list[float]] = {}
    for phase in phases:
        tag = f"{names.namespace(phase['cell'])}/phase/{phase['phase']}/wall_s"
        expected.setdefault(tag, []).append(float(phase["wall_s"]))
    assert {"shared/phase/prepare-data/wall_s", "self-distillation_f_1.0_seed_42/phase/train/wall_s"} <= set(expected)
    logged = {tag: points for tag, points in series.items() if "/phase/" in tag and tag.endswith("/wall_s")}
    assert set(logged) == set(expected)
    for tag, walls in expected.items():
        assert [step for step, _ in logged[tag]] == list(range(1, len(walls) + 1))
        assert [value for _, value in logged[tag]] == pytest.approx(walls, rel=1e-5)
    counts = Counter(tag.rsplit("/", 1)[1] for tag in series if "/phase/" in tag)
    assert {"cpu_s", "accelerator_hours", "peak_rss_mb", "count", "reused"} <= set(counts)


def test_without_the_option_nothing_is_tracked_and_the_results_are_the_same(tracked_and_plain):
    """Off by default: no tracking folder, no tracker imported; on, the results are those of a run without it."""
    tracked, plain, _, plain_stdout = tracked_and_plain
    assert (tracked / tracking.FOLDER).is_dir()
    assert not (plain / tracking.FOLDER).exists()
    assert "imported: []" in plain_stdout
    tracked_rows, plain_rows = read_rows(tracked / "results.csv"), read_rows(plain / "results.csv")
    assert len(tracked_rows) == len(plain_rows) > 0
    for with_tracking, without in zip(tracked_rows, plain_rows, strict=True):
        differing = {key for key in with_tracking if with_tracking[key] != without[key]}
        assert differing <= TIMING_COLUMNS, differing


@pytest.mark.parametrize(
    ("tracker", "hidden", "command"),
    [
        ("tensorboard", ["tensorboard", "tensorboardX"], "pip install tensorboard"),
        ("wandb", ["wandb"], "pip install wandb"),
        ("mlflow", ["mlflow"], "pip install mlflow"),
    ],
)
def test_a_tracker_that_is_not_installed_is_refused_before_any_work(tracker, hidden, command, tiny_setup, tmp_path):
    """Its package hidden (as if not installed): one line naming the pip command, exit 2, no run folder, no cache."""
    arguments, env = tiny_setup
    site = tmp_path / "hidden"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import sys\nsys.modules.update(dict.fromkeys({hidden!r}))\n")
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = cli(
        "run",
        *arguments,
        "--cache-dir",
        str(cache),
        "--out",
        str(out),
        "--log-with",
        f"tensorboard,{tracker}" if tracker != "tensorboard" else tracker,
        env={**env, "PYTHONPATH": str(site)},
    )
    assert_one_line_error(result, f"--log-with {tracker}", command)
    assert not out.exists() and not cache.exists()


def test_an_unknown_tracker_is_refused_in_one_line(tmp_path):
    result = cli("run", "--log-with", "tensorboard,comet", "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "comet is not a tracker", "tensorboard, wandb, mlflow")
    assert not (tmp_path / "out").exists()


# --- the tracker-independent parts, without a run --------------------------------------------------------------
def test_cells_whose_ids_clean_alike_get_apart_namespaces():
    names = tracking.Tracking()
    first, second = names.namespace("a:b|f=1.0|seed=1"), names.namespace("a,b|f=1.0|seed=1")
    assert first == "a_b_f_1.0_seed_1"
    assert second.startswith(first) and second != first
    assert names.namespace("a:b|f=1.0|seed=1") == first  # stable
    assert names.namespace("") == tracking.SHARED


def test_hyperparameters_are_flat_scalars():
    from benchmark.run.config import RunConfig

    values = tracking.hyperparameters(RunConfig(regimes=("self-distillation",), seeds=(1, 2)))
    assert values["seeds"] == "[1, 2]"
    assert values["training.batch_size"] == 32
    assert values["data.max_train_triples"] is None
    assert isinstance(values["out"], str)
    assert all(value is None or isinstance(value, (bool, int, float, str)) for value in values.values())


class Recorder:
    """Stands in for an accelerate tracker: records what it is given."""

    def __init__(self, name: str = "tensorboard") -> None:
        self.name = name
        self.logged: list[tuple[dict, int | None]] = []
        self.finished = 0
        self.defined: list[tuple[str, str]] = []
        self.tracker = self  # wandb's run

    def log(self, values: dict, step: int | None = None) -> None:
        self.logged.append((values, step))

    def define_metric(self, name: str, step_metric: str) -> None:
        self.defined.append((name, step_metric))

    def finish(self) -> None:
        self.finished += 1


def test_wandb_gets_each_groups_step_as_its_x_axis_and_close_ends_once():
    """wandb drops a step lower than one already logged, and every cell counts from 1: the step goes in the values."""
    board, wandb = Recorder(), Recorder("wandb")
    run = tracking.Tracking([board, wandb])
    for cell in ("a|f=1.0|seed=1", "b|f=1.0|seed=1"):
        log = run.for_cell(cell)
        log({"train/loss": 0.5}, 1)
        log({"train/loss": 0.4}, 2)
    run.log_phase(PhaseRecord(phase="train", charged_to="a", cell="a|f=1.0|seed=1", wall_s=3.0))
    assert board.logged[0] == ({"a_f_1.0_seed_1/train/loss": 0.5}, 1)
    assert wandb.logged[0] == ({"a_f_1.0_seed_1/train/loss": 0.5, "a_f_1.0_seed_1/train/step": 1}, None)
    assert ("b_f_1.0_seed_1/train/*", "b_f_1.0_seed_1/train/step") in wandb.defined
    assert len(wandb.defined) == 3  # two cells' train groups and one phase group, each declared once
    phase_values, phase_step = board.logged[-1]
    assert phase_step == 1 and phase_values["a_f_1.0_seed_1/phase/train/wall_s"] == 3.0
    assert "a_f_1.0_seed_1/phase/train/energy_kwh" not in phase_values  # not measured: not logged as 0
    run.close()
    run.close()
    assert board.finished == wandb.finished == 1


def test_off_costs_nothing():
    assert tracking.start((), Path("/nonexistent"), "run", config=None) is tracking.OFF
    assert tracking.OFF.for_cell("a|f=1.0|seed=1") is None
    tracking.OFF.log_phase(PhaseRecord(phase="train", charged_to=""))  # a no-op
