"""`evaluate`'s pieces that need no encoding: the rows it adds, the run's saved systems, the sets it accepts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from benchmark.common.errors import UsageError
from benchmark.run.config import RunConfig
from benchmark.run.evaluate import EVALUATED_AT, Target, evaluation_sets, new_rows, saved_systems
from tests.benchmark.conftest import write_beir


def table_row(system: str, ndcg: float, p: float, difference: float, **extra) -> dict:
    """A row of evaluate_collection's table (pt.Experiment's columns, as evaluation.experiment leaves them)."""
    row = {"eval_set": "new:test", "queries": 7, "system": system}
    for measure in ("nDCG@10", "RR@10", "R@100", "R@1000"):
        row[measure] = ndcg
        row[f"{measure} p-value corrected"] = p
        row[f"{measure} mean difference"] = difference
    return {**row, **extra}


def test_a_new_row_takes_its_measures_from_the_table_and_everything_else_from_its_systems_rows(tmp_path):
    """Budget, costs and a trained system's status are the system's on every set; the measures, significance and
    an untrained system's status are the new set's."""
    templates = {
        "initial": {"kind": "initial", "status": "status on the run's set", "pairwise_accuracy": "0.77"},
        "self-distillation": {
            "kind": "regime",
            "status": "stopped: non-finite loss (nan) at step 3",
            "examples_consumed": "444",
            "charged_wall_s": "119.8",
        },
        "teacher:scores:/x": {"kind": "teacher", "status": "cannot be evaluated as a retrieval system"},
    }
    target = Target(tmp_path / "run-7", RunConfig(regimes=()), {}, [], templates=templates)
    table = pd.DataFrame(
        [
            table_row("initial", 0.5, math.nan, 0.0),
            table_row("self-distillation", 0.6, 0.01, 0.1),
            table_row("teacher:scores:/x", math.nan, math.nan, math.nan, status="cannot be evaluated (this set)"),
            table_row("teacher:bm25", 0.4, 0.2, -0.1),
        ]
    )
    rows = {row["system"]: row for row in new_rows(table, target, "2026-01-01T00:00:00+0000")}
    trained = rows["self-distillation"]
    assert trained["run_id"] == "run-7" and trained["eval_set"] == "new:test" and trained["queries"] == 7
    assert (trained["nDCG@10"], trained["nDCG@10 sig"], trained["nDCG@10 p"]) == (0.6, "+", 0.01)
    assert (trained["examples_consumed"], trained["charged_wall_s"]) == ("444", "119.8")
    assert trained["status"] == "stopped: non-finite loss (nan) at step 3"  # its training's, not the table's
    assert rows["initial"]["pairwise_accuracy"] == "0.77" and rows["initial"]["status"] == "ok"
    assert rows["teacher:scores:/x"]["status"] == "cannot be evaluated (this set)"
    assert rows["teacher:bm25"]["kind"] == "teacher"  # a system the run's rows do not name
    assert {row[EVALUATED_AT] for row in rows.values()} == {"2026-01-01T00:00:00+0000"}
    assert list(trained)[:6] == ["run_id", "eval_set", "queries", "system", "kind", "nDCG@10"]


def results_row(eval_set: str, system: str, kind: str, regime: str = "") -> dict:
    return {"eval_set": eval_set, "system": system, "kind": kind, "regime": regime}


def test_the_trained_systems_are_the_manifests_regimes_in_the_order_of_their_rows(tmp_path):
    """Each regime row of the run's first set gets the model and regime (with its teacher) manifest.json stores for
    it; a tune point's model comes from its cell; results and manifest that disagree are refused."""
    stored = {
        "regimes": [
            {
                "label": "self-distillation",
                "name": "self-distillation",
                "settings": {"target": 0.3},
                "model_dir": "m/a",
            },
            {
                "label": "teacher-distillation",
                "name": "teacher-distillation",
                "settings": {"teacher": "bm25", "in_batch_weight": 0.0, "teacher_scale": "auto"},
                "model_dir": "m/b",
            },
        ]
    }
    cell = tmp_path / "cells" / "p-1234"
    cell.mkdir(parents=True)
    (cell / "cell.json").write_text(json.dumps({"system": "sd:target=0.1 (tune point)", "model_dir": "m/p"}))
    rows = [
        results_row("a:test", "bm25", "bm25"),
        results_row("a:test", "self-distillation f=1.0 seed=1", "regime", "self-distillation"),
        results_row("a:test", "teacher-distillation f=1.0 seed=1", "regime", "teacher-distillation"),
        results_row("a:test", "sd:target=0.1 (tune point)", "tune point", "sd:target=0.1 (tune point)"),
        results_row("b:test", "self-distillation f=1.0 seed=1", "regime", "self-distillation"),
        results_row("b:test", "teacher-distillation f=1.0 seed=1", "regime", "teacher-distillation"),
    ]
    systems, points = saved_systems(tmp_path, stored, rows)
    assert [(s.system, s.model_dir) for s in systems] == [
        ("self-distillation f=1.0 seed=1", str(tmp_path / "m/a")),
        ("teacher-distillation f=1.0 seed=1", str(tmp_path / "m/b")),
    ]
    assert systems[0].regime.settings["target"] == 0.3 and systems[1].regime.teacher.spec == "bm25"
    assert [(p.system, p.model_dir) for p in points] == [("sd:target=0.1 (tune point)", str(tmp_path / "m/p"))]
    swapped = [rows[0], rows[2], rows[1]]
    with pytest.raises(UsageError, match="name different trained systems"):
        saved_systems(tmp_path, stored, swapped)


@pytest.fixture
def two_sets(tmp_path, monkeypatch) -> tuple[Path, Path]:
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "ir_datasets_home"))
    return write_beir(tmp_path / "one"), write_beir(tmp_path / "two")


def test_a_set_already_in_the_results_is_refused_unless_replaced(two_sets):
    one, two = two_sets
    existing = {f"{one}:test"}
    with pytest.raises(UsageError, match="already in .*results.csv; pass --replace"):
        evaluation_sets([str(two), str(one)], existing, replace_rows=False)
    found = evaluation_sets([str(two), str(one)], existing, replace_rows=True)
    assert [c.name for c in found] == [f"{two}:test", f"{one}:test"]
    with pytest.raises(UsageError, match="named twice"):
        evaluation_sets([str(two), f"{two}:test"], existing, replace_rows=False)


def test_a_set_whose_run_files_would_land_in_another_sets_folder_is_refused(two_sets):
    """runs/<set>/ is the set's name made safe for a path: two names that make the same folder cannot both be
    there, even with --replace."""
    one, _ = two_sets
    with pytest.raises(UsageError, match="would share the run files folder"):
        evaluation_sets([str(one)], {f"{str(one).replace('/', '#')}:test"}, replace_rows=True)


def test_a_set_without_judged_queries_is_refused(two_sets):
    """A folder's empty qrels are refused as it is read; an id's judgments that name none of its queries too."""
    from types import SimpleNamespace

    from benchmark.data.collections import require_judged

    unjudged = SimpleNamespace(name="some/id", queries={"q1": "a query"}, qrels={"q9": {"d1": 1}})
    with pytest.raises(UsageError, match="some/id has no judged queries"):
        require_judged(unjudged)
    require_judged(SimpleNamespace(name="some/id", queries={"q1": "a query"}, qrels={"q1": {"d1": 0}}))
    one, _ = two_sets
    (one / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")
    with pytest.raises(UsageError, match="holds no judgments"):
        evaluation_sets([str(one)], set(), replace_rows=False)
