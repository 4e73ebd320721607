"""`python -m benchmark evaluate` through the real CLI, on a tiny finished run of the main command: rows for every
system on new sets, run files, provenance, verdicts on the new sets, a model's evaluation folder, and bad input
refused in one line with the run left byte for byte as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmark.evaluation.systems import safe_name
from tests.test_cli import TINY_RUN, assert_one_line_error, cli, read_rows

MEASURES = ("nDCG@10", "RR@10", "R@100", "R@1000")
SET_COLUMNS = {"eval_set", "queries", "evaluated_at", *MEASURES, *(f"{m} {s}" for m in MEASURES for s in ("sig", "p"))}
# A second set with other judgments (two of them on training positives), so its numbers differ from the run's set.
OTHER_QRELS = [("q1", "d1", 1), ("q2", "d4", 1), ("q5", "d9", 2), ("q7", "d12", 1)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict:
    """The main command on tiny data (every regime at 0.135, the reference also at 1.0, a 2-point static search),
    an identical copy of its evaluation set under another path and a set with other judgments."""
    from tests.benchmark.conftest import write_beir
    from tests.tiny import save_tiny_bert

    base = tmp_path_factory.mktemp("evaluate")
    model = save_tiny_bert(base / "bert")
    env = {"IR_DATASETS_HOME": str(base / "ir_datasets"), "OMP_NUM_THREADS": "1"}
    sets = {"run": write_beir(base / "beir"), "copy": write_beir(base / "copy"), "other": write_beir(base / "other")}
    write_beir(sets["other"], test=OTHER_QRELS)
    result = cli(
        "run",
        *TINY_RUN[:2],  # --regimes all
        "--data-fraction",
        "0.135",
        "--tune",
        "self-distillation:target=0.2|0.6",
        *TINY_RUN[4:],
        "--learning-rate",  # on this tiny data, one at which some regime validates a gain (1e-3, 3e-3, 5e-3: none)
        "2e-3",
        "--dataset",
        str(sets["run"]),
        "--model",
        str(model),
        "--cache-dir",
        str(base / "cache"),
        "--out",
        str(base / "out"),
        "--run-id",
        "main",
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {"run": base / "out" / "main", "model": model, "sets": sets, "env": env, "cache": base / "cache"}


def copy_of(run: Path, tmp_path: Path) -> Path:
    """A test's own copy of the finished run (model and cell paths in it are relative)."""
    return shutil.copytree(run, tmp_path / "out" / run.name)


def by_set(rows: list[dict]) -> dict[str, dict[str, dict]]:
    found: dict[str, dict[str, dict]] = {}
    for row in rows:
        found.setdefault(row["eval_set"], {})[row["system"]] = row
    return found


def test_a_run_gains_rows_for_every_system_on_new_sets_and_verdicts_for_them(finished, tmp_path):
    """Every system of the run (bm25, initial, teacher, every trained regime, the tuned search) gets a row on each
    new set: on a copy of the run's own set the numbers are the run's to the last digit (the same encoders, indexes
    and pt.Experiment), on other judgments they differ; the run's rows stay as written; run files, leakage and
    provenance are there; and `report` gives both claims a verdict on the new sets."""
    run = copy_of(finished["run"], tmp_path)
    before = read_rows(run / "results.csv")
    phases_before = (run / "phases.csv").read_text()
    copy_set, other_set = finished["sets"]["copy"], finished["sets"]["other"]
    result = cli("evaluate", str(run), "--eval", f"{copy_set},{other_set}", env=finished["env"])
    assert result.returncode == 0, result.stderr[-3000:]

    rows = read_rows(run / "results.csv")
    assert rows[: len(before)] == [{**row, "evaluated_at": ""} for row in before]  # the run's rows as they were
    sets = by_set(rows)
    own, copy, other = sets.pop(f"{finished['sets']['run']}:test"), sets[f"{copy_set}:test"], sets[f"{other_set}:test"]
    assert list(sets) == [f"{copy_set}:test", f"{other_set}:test"]
    assert {row["kind"] for row in own.values()} == {"bm25", "initial", "teacher", "regime"}
    assert len([row for row in own.values() if row["kind"] == "regime"]) == 5  # 3 regimes, the reference at 1.0, tuned
    for new in (copy, other):
        assert list(new) == list(own)  # every system, in the run's order
        for system, row in new.items():
            assert {k: v for k, v in row.items() if k not in SET_COLUMNS} == {
                k: v for k, v in own[system].items() if k not in SET_COLUMNS
            }, system  # budget, costs, speedups, status: the system's own
            assert row["evaluated_at"]
    for system in own:
        assert [copy[system][m] for m in MEASURES] == [own[system][m] for m in MEASURES], system
        assert copy[system]["nDCG@10 p"] == own[system]["nDCG@10 p"], system
    assert [other[s]["nDCG@10"] for s in own] != [own[s]["nDCG@10"] for s in own]
    assert len({row["nDCG@10"] for row in own.values()}) > 1  # the systems differ: swapped models would show

    for eval_set in (copy_set, other_set):
        folder = run / "runs" / safe_name(f"{eval_set}:test")
        assert {"qrels.tsv", "topics.tsv"} <= {p.name for p in folder.iterdir()}
        assert len(list(folder.glob("*.res.gz"))) == len(own)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["evaluation_sets"][1:] == [f"{copy_set}:test", f"{other_set}:test"]
    entries = manifest["evaluations"]
    assert [entry["eval_set"] for entry in entries] == [f"{copy_set}:test", f"{other_set}:test"]
    for entry in entries:
        assert entry["when"] == copy[next(iter(copy))]["evaluated_at"]
        assert entry["commit"] and entry["command"][3:5] == ["evaluate", str(run)]
        assert entry["systems"] == len(own) and entry["replaced"] is False
    leakage = json.loads((run / "leakage.json").read_text())
    assert leakage[f"{other_set}:test"]["relevant_documents_that_are_training_positives"] == 2  # d1 and d9
    assert leakage[f"{copy_set}:test"]["relevant_documents_that_are_training_positives"] == 0
    phases = (run / "phases.csv").read_text()
    assert phases.startswith(phases_before) and f"evaluate,,{other_set}:test," in phases
    assert not (run / ".work").exists()

    report = cli("report", str(run), env=finished["env"])
    assert report.returncode == 0, report.stderr[-3000:]
    verdicts = read_rows(run / "verdicts.csv")
    assert sorted((v["claim"], v["eval_set"]) for v in verdicts) == sorted(
        (claim, f"{path}:test") for claim in ("1", "2") for path in (finished["sets"]["run"], copy_set, other_set)
    )
    in_domain = {v["eval_set"]: v["in_domain"] for v in verdicts}
    assert (in_domain[f"{copy_set}:test"], in_domain[f"{other_set}:test"]) == ("False", "True")
    assert f"{other_set}:test" in (run / "report.md").read_text()


def test_a_set_already_evaluated_is_refused_untouched_unless_replace_is_given(finished, tmp_path):
    """Evaluating the run's own set again is refused in one line with every file as it was; with --replace (here
    on fewer queries) that set's rows are replaced."""
    run = copy_of(finished["run"], tmp_path)
    own_set = f"{finished['sets']['run']}"
    files = {name: (run / name).read_bytes() for name in ("results.csv", "phases.csv", "manifest.json")}
    refused = cli("evaluate", str(run), "--eval", own_set, env=finished["env"])
    assert_one_line_error(refused, "is already in", "--replace")
    assert {name: (run / name).read_bytes() for name in files} == files

    before = read_rows(run / "results.csv")
    replaced = cli("evaluate", str(run), "--eval", own_set, "--replace", "--max-eval-queries", "2", env=finished["env"])
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    after = read_rows(run / "results.csv")
    assert [row["system"] for row in after] == [row["system"] for row in before]  # replaced, not added
    assert {row["queries"] for row in after} == {"2"} and all(row["evaluated_at"] for row in after)
    entry = json.loads((run / "manifest.json").read_text())["evaluations"][-1]
    assert entry["replaced"] is True and entry["queries"] == 2


@pytest.fixture(scope="module")
def refusals(finished, tmp_path_factory) -> Path:
    """A copy of the run that only refused commands see."""
    return copy_of(finished["run"], tmp_path_factory.mktemp("refusals"))


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("no such run", ["no run or model folder", "results/<run-id>"]),
        ("not a model", ["is neither a finished run", "nor a model", "could not be loaded"]),
        ("unfinished run", ["is not a finished run", "--resume"]),
        ("set without judgments", ["holds no judgments"]),
        ("unknown set", ["unknown dataset 'no-such/set'"]),
        ("baseline for a run", ["--baseline is for a model"]),
        ("missing model", ["the model of self-distillation f=0.135 seed=42 is missing"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2_and_the_run_stays_as_it_was(case, words, finished, refusals, tmp_path):
    run, new_set, out = refusals, str(finished["sets"]["copy"]), tmp_path / "results"
    files = {path: path.read_bytes() for path in run.rglob("*") if path.is_file() and path.name != ".lock"}
    out.mkdir()
    if case == "no such run":
        arguments = [str(out / "nope"), "--eval", new_set, "--out", str(out)]
    elif case == "not a model":
        (tmp_path / "empty").mkdir()
        arguments = [str(tmp_path / "empty"), "--eval", new_set, "--out", str(out)]
    elif case == "unfinished run":
        run = copy_of(finished["run"], tmp_path)
        manifest = json.loads((run / "manifest.json").read_text())
        (run / "manifest.json").write_text(json.dumps({**manifest, "state": "running"}))
        files = {path: path.read_bytes() for path in run.rglob("*") if path.is_file() and path.name != ".lock"}
        arguments = [str(run), "--eval", new_set]
    elif case == "set without judgments":
        unjudged = shutil.copytree(finished["sets"]["copy"], tmp_path / "unjudged")
        (unjudged / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")
        arguments = [str(run), "--eval", f"{new_set},{unjudged}"]
    elif case == "unknown set":
        arguments = [str(run), "--eval", f"{new_set},no-such/set"]
    elif case == "baseline for a run":
        arguments = [str(run), "--eval", new_set, "--baseline", str(finished["model"])]
    else:
        run = copy_of(finished["run"], tmp_path)
        shutil.rmtree(run / "models" / "self-distillation_f=0.135_seed=42")
        files = {path: path.read_bytes() for path in run.rglob("*") if path.is_file() and path.name != ".lock"}
        arguments = [str(run), "--eval", new_set]
    result = cli("evaluate", *arguments, "--no-energy", env=finished["env"])
    assert_one_line_error(result, *words)
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file() and path.name != ".lock"} == files
    assert not any(out.iterdir())  # no evaluation folder left behind


def test_a_model_gets_an_evaluation_folder_that_report_renders_and_evaluate_extends(finished, tmp_path):
    """A trained encoder given as a plain model folder, against the run's initial encoder as --baseline: its
    numbers on the run's set are the run's, in a new folder of the same layout; `report` renders it and a second
    `evaluate` adds a set to it."""
    run, env = finished["run"], finished["env"]
    own = by_set(read_rows(run / "results.csv"))[f"{finished['sets']['run']}:test"]
    # a trained model, not the baseline again: one whose weights moved its metrics (on tiny data, which regime
    # validates a gain depends on the seed's draws)
    moved = [
        name for name, row in own.items() if row["kind"] == "regime" and row["nDCG@10"] != own["initial"]["nDCG@10"]
    ]
    assert moved, "no regime of the tiny run moved its metrics"
    system = moved[0]
    model = run / "models" / system.replace(" ", "_")
    settings = ["--precision", "fp32", "--device", "cpu", "--max-query-length", "16", "--max-doc-length", "32"]
    out = tmp_path / "results"
    result = cli(
        "evaluate",
        str(model),
        "--eval",
        str(finished["sets"]["run"]),
        "--baseline",
        str(finished["model"]),
        *settings,
        "--cache-dir",
        str(finished["cache"]),
        "--no-energy",
        "--out",
        str(out),
        "--run-id",
        "mine",
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = out / "mine"
    rows = {row["system"]: row for row in read_rows(folder / "results.csv")}
    assert [(system, row["kind"]) for system, row in rows.items()] == [
        ("bm25", "bm25"),
        ("initial", "initial"),
        (str(model), "model"),
    ]
    for measure in MEASURES:
        assert rows[str(model)][measure] == own[system][measure]
        assert rows["initial"][measure] == own["initial"][measure]
    assert rows[str(model)]["nDCG@10"] != rows["initial"]["nDCG@10"]
    assert len(list((folder / "runs").glob("*/*.res.gz"))) == 3
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "evaluation" and manifest["config"]["encoder"]["model"] == str(finished["model"])
    assert manifest["models"] == [{"system": str(model), "model": str(model.resolve())}]
    assert [entry["eval_set"] for entry in manifest["evaluations"]] == [f"{finished['sets']['run']}:test"]

    report = cli("report", str(folder), env=env)
    assert report.returncode == 0, report.stderr[-3000:]
    assert (folder / "report.md").exists()
    again = cli("evaluate", str(folder), "--eval", str(finished["sets"]["other"]), env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [row["eval_set"] for row in read_rows(folder / "results.csv")] == [f"{finished['sets']['run']}:test"] * 3 + [
        f"{finished['sets']['other']}:test"
    ] * 3
    taken = cli(
        "evaluate", str(model), "--eval", str(finished["sets"]["run"]), "--out", str(out), "--run-id", "mine", env=env
    )
    assert_one_line_error(taken, "already holds results", "--run-id")
