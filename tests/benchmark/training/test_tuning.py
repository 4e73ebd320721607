"""--tune: specs parsed (bad ones refused in one line), grids expanded, selection on validation alone, the search's
cost summed into one phase, and a whole tiny run with a tuned regime (its row, its tune phase, its resume)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from benchmark.common.errors import UsageError
from benchmark.measurement.phases import PhaseRecord
from benchmark.reporting.tables import charged
from benchmark.training.cells import Cell, RegimeRun
from benchmark.training.loop import CurvePoint, TrainingOutcome
from benchmark.training.tuning import parse_specs, search_record, select, tuned_run
from regimes.self_distillation import SelfDistillation


def test_a_spec_is_normalised_into_its_label_grid_and_fixed_settings():
    [spec] = parse_specs([" teacher-distillation: in_batch_weight=0.5 , learning_rate = 1e-5 | 2e-5 "])
    assert spec.label == "teacher-distillation:in_batch_weight=0.5,learning_rate=1e-5|2e-5"
    assert spec.grid_text == "learning_rate=1e-5|2e-5"
    first, second = spec.points()
    assert first.regime.settings["in_batch_weight"] == 0.5 and first.training == (("learning_rate", 1e-5),)
    assert second.settings == "learning_rate=2e-5"
    assert second.label == "teacher-distillation:in_batch_weight=0.5,learning_rate=2e-5 (tune point)"


def test_specs_come_from_repeated_options_and_semicolons():
    specs = parse_specs(["self-distillation:target=0.1|0.2;batch-sampling:temperature=0.05|0.1", "x" * 0])
    assert [s.label for s in specs] == ["self-distillation:target=0.1|0.2", "batch-sampling:temperature=0.05|0.1"]


def test_a_grid_over_several_keys_is_their_cartesian_product_in_order():
    [spec] = parse_specs(["self-distillation:target=0.1|0.2|0.3,learning_rate=1e-5|2e-5"])
    points = spec.points()
    assert [p.settings for p in points] == [
        f"target={t},learning_rate={lr}" for t in ("0.1", "0.2", "0.3") for lr in ("1e-5", "2e-5")
    ]
    assert [p.regime.settings["target"] for p in points] == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3]
    assert len({p.label for p in points}) == 6


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("nope:target=0.1|0.2", ["unknown regime", "nope"]),
        ("self-distillation:colour=red|blue", ["'colour'", "neither a parameter", "learning_rate"]),
        ("self-distillation:target=0.3", ["one point"]),
        ("self-distillation", ["no grid"]),
        ("self-distillation:target=0.1|banana", ["target='banana'", "invalid"]),
        ("self-distillation:learning_rate=1e-5|fast", ["learning_rate='fast'", "invalid"]),
        ("self-distillation:batch_size=0|2", ["batch_size='0'", "positive"]),
        ("self-distillation:schedule=linear|sometimes", ["schedule='sometimes'"]),
        ("self-distillation:target=0.1|0.1", ["value twice"]),
        ("self-distillation:target=0.1|0.2,target=0.3|0.4", ["given twice"]),
        ("self-distillation:target=0.1|0.2;self-distillation:target=0.1|0.2", ["given twice"]),
    ],
)
def test_bad_specs_are_one_line_usage_errors(spec, words):
    with pytest.raises(UsageError) as caught:
        parse_specs([spec])
    message = str(caught.value)
    assert "\n" not in message and message.startswith("--tune")
    for word in words:
        assert word in message, message


# --- selection on validation, and the search's cost -----------------------------------------------------------
def point_run(label: str, validation: float, test: float, fraction: float = 1.0, seed: int = 42) -> RegimeRun:
    """A finished point with a validation score and, beside it, a test score that selection must never see."""
    outcome = TrainingOutcome(steps=4, best_validation=validation, curve=[CurvePoint(0, 0, 0.0, 0.1)])
    run = RegimeRun(Cell(SelfDistillation(), fraction, seed, label=label), label, 10, outcome, Path(label))
    run.test_ndcg = test  # what a cheating selection would use
    return run


def records_for(runs: list[RegimeRun]) -> list[PhaseRecord]:
    records = []
    for number, run in enumerate(runs, start=1):
        for phase, wall in (("train", 10.0 * number), ("validate", 1.5 * number)):
            records.append(
                PhaseRecord(phase, run.cell.name, run.cell.id, wall_s=wall, cpu_s=2 * wall, energy_kwh=wall / 1000)
            )
    records.append(PhaseRecord("evaluate", "", "test-set", wall_s=99.0))  # shared: no point's
    return records


def test_selection_uses_validation_and_never_the_test():
    [spec] = parse_specs(["self-distillation:target=0.1|0.2|0.3"])
    labels = [p.label for p in spec.points()]
    runs = [point_run(labels[0], 0.40, 0.90), point_run(labels[1], 0.55, 0.30), point_run(labels[2], 0.50, 0.95)]
    tuned = tuned_run(spec, runs, records_for(runs), grid=False)
    assert tuned.tune.selected == 1 and tuned.tune.selected_settings == "target=0.2"  # best on validation
    assert max(runs, key=lambda r: r.test_ndcg) is not runs[1]  # the test would have chosen another point
    assert tuned.system == tuned.cell.name == spec.label
    assert tuned.outcome is runs[1].outcome and tuned.model_dir == runs[1].model_dir
    assert tuned.charged_cell == runs[1].cell.id


def test_ties_go_to_the_first_point_in_grid_order_and_nan_is_worst():
    assert select([0.5, 0.7, 0.7]) == 1
    assert select([math.nan, 0.2, math.nan]) == 1
    assert select([-math.inf, -math.inf]) == 0


def test_the_tune_phase_is_the_sum_of_the_points_charged_costs():
    [spec] = parse_specs(["self-distillation:target=0.1|0.2|0.3"])
    runs = [point_run(p.label, 0.1 * n, 0.0) for n, p in enumerate(spec.points())]
    records = records_for(runs)
    tuned = tuned_run(spec, runs, records, grid=False)
    record = tuned.tune.record
    for name in ("wall_s", "cpu_s", "energy_kwh"):
        assert getattr(record, name) == pytest.approx(sum(charged(records, r.cell.id)[f"charged_{name}"] for r in runs))
    assert record.wall_s == pytest.approx(10 + 20 + 30 + 1.5 + 3 + 4.5)  # the shared evaluation is no point's
    assert (record.phase, record.charged_to, record.cell) == ("tune", spec.label, tuned.cell.id)
    assert record.count == 3 and all(r.cell.id in record.aggregates for r in runs)


def test_a_cached_phase_the_points_share_is_charged_to_the_search_once():
    """Teacher scores computed by the first point and replayed (reused) by the others: one scoring, one charge."""
    [spec] = parse_specs(["teacher-distillation:learning_rate=1e-5|2e-5|5e-5"])
    runs = [point_run(p.label, 0.5, 0.0) for p in spec.points()]
    records = records_for(runs)
    scoring = dict(phase="score-teacher", wall_s=7.0, cpu_s=7.0, count=40)
    records.append(PhaseRecord(charged_to=runs[0].cell.name, cell=runs[0].cell.id, **scoring))
    for run in runs[1:]:
        records.append(PhaseRecord(charged_to=run.cell.name, cell=run.cell.id, reused=True, **scoring))
    record = search_record(spec.label, "tuned", runs, records)
    assert record.wall_s == pytest.approx(10 + 20 + 30 + 1.5 + 3 + 4.5 + 7.0)


# --- a whole tiny run -----------------------------------------------------------------------------------------
TUNED = "self-distillation:target=0.2|0.8"


@pytest.fixture(scope="module")
def tuned_run_folder(tmp_path_factory, tiny_model_dir):
    """A tiny run: adaptive self-distillation next to a static-target search, every point also evaluated; then the
    same run resumed, which must load every point, not train it."""
    from benchmark.run.runner import run
    from tests.benchmark.conftest import write_beir
    from tests.benchmark.run.test_runner import tiny_config

    base = tmp_path_factory.mktemp("tune")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IR_DATASETS_HOME", str(base / "ir_datasets_home"))
        folder = write_beir(base / "beir")
        regimes = [SelfDistillation()]
        config = tiny_config(folder, tiny_model_dir, base, regimes, run_id="tuned", tune=(TUNED,), evaluate_all=True)
        assert run(config, regimes, ["run"]) == 0
        first = (base / "tuned" / "results.csv").read_text()
        resumed = tiny_config(
            folder, tiny_model_dir, base, regimes, run_id="tuned", tune=(TUNED,), evaluate_all=True, resume=True
        )
        assert run(resumed, [SelfDistillation()], ["run"]) == 0
    return base / "tuned", first


def read(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_the_tuned_system_is_a_row_with_its_search(tuned_run_folder):
    directory, _ = tuned_run_folder
    rows = {row["system"]: row for row in read(directory / "results.csv")}
    tuned = rows[TUNED]
    points = {name: row for name, row in rows.items() if row["kind"] == "tune point"}
    assert set(points) == {"self-distillation:target=0.2 (tune point)", "self-distillation:target=0.8 (tune point)"}
    assert (tuned["kind"], tuned["regime"], tuned["tune_grid"], tuned["tune_points"]) == (
        "regime",
        TUNED,
        "target=0.2|0.8",
        "2",
    )
    best = max(points.values(), key=lambda r: float(r["best_validation_ndcg10"]))  # first on ties: dict order
    assert tuned["tune_selected"] == best["system"].split(":")[1].removesuffix(" (tune point)")
    assert tuned["nDCG@10"] == best["nDCG@10"] and tuned["charged_wall_s"] == best["charged_wall_s"]
    total = sum(float(row["charged_wall_s"]) for row in points.values())
    assert float(tuned["tune_wall_s"]) == pytest.approx(total)
    assert float(tuned["tune_wall_s"]) > float(tuned["charged_wall_s"])
    assert rows["self-distillation"]["tune_grid"] == ""  # an untuned regime has no search


def test_phases_hold_one_aggregate_tune_phase_and_curves_say_which_are_points(tuned_run_folder):
    directory, _ = tuned_run_folder
    phases = read(directory / "phases.csv")
    [tune] = [p for p in phases if p["phase"] == "tune"]
    assert tune["charged_to"] == TUNED and tune["cell"] == f"{TUNED}|f=1.0|seed=42" and tune["aggregates"]
    points = [p for p in phases if p["charged_to"].endswith("(tune point)")]
    assert float(tune["wall_s"]) == pytest.approx(sum(float(p["wall_s"]) for p in points))
    curves = read(directory / "curves.csv")
    assert {c["regime"] for c in curves if c["tune_point"] == "False"} == {"self-distillation", TUNED}
    assert len({c["regime"] for c in curves if c["tune_point"] == "True"}) == 1  # the point not selected


def test_a_resumed_tuned_run_loads_its_points_and_gives_the_same_rows(tuned_run_folder):
    import json

    directory, first = tuned_run_folder
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["config"]["tune"] == [TUNED]
    origins = manifest["cells"]
    assert all(
        "loaded, not retrained" in origins[f"self-distillation:target={t} (tune point)|f=1.0|seed=42"]
        for t in ("0.2", "0.8")
    )
    timings = {"run_id", "train_wall_to_best_s"}
    again = [{k: v for k, v in r.items() if k not in timings} for r in read(directory / "results.csv")]
    before = [{k: v for k, v in r.items() if k not in timings} for r in csv.DictReader(first.splitlines())]
    assert again == before


def test_the_cost_table_shows_a_tuned_system_with_and_without_its_search(tuned_run_folder):
    from rich.console import Console

    from benchmark.reporting.tables import cost_table

    directory, _ = tuned_run_folder
    results, phases = read(directory / "results.csv"), read(directory / "phases.csv")
    console = Console(width=400, record=True)
    console.print(cost_table(results, phases, "self-distillation"))
    lines = console.export_text().splitlines()
    header = next(line for line in lines if line.startswith("┃") and "with tune s" in line)
    column = header.index("with tune s")
    tuned = next(row for row in results if row["system"] == TUNED)
    rows = [line for line in lines if line.startswith("│") and line[1:].strip()[:1].isalpha()]
    shown = [line[column - 2 : column + 11].strip(" │") for line in rows]
    assert [value for value in shown if value] == [f"{float(tuned['tune_wall_s']):.1f}"]  # the tuned system only
