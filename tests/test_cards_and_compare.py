"""The real CLI on tiny data: every saved model gets its model card after a run (and again from `report`), and
`compare` puts two runs' systems side by side; bad input to `compare` is one line, exit status 2."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import yaml

from tests.test_cli import assert_one_line_error, cli, read_rows, tiny_setup  # noqa: F401 - tiny_setup: a fixture

REPO = Path(__file__).resolve().parent.parent
ARXIV = {"self-distillation": "2407.21515", "teacher-distillation": "2010.02666", "batch-sampling": "2104.06967"}


@pytest.fixture(scope="module")
def two_runs(tiny_setup, tmp_path_factory) -> tuple[Path, Path]:  # noqa: F811 - the fixture imported above
    """Two finished tiny runs of every regime, the second with another learning rate (before and after a change)."""
    arguments, env = tiny_setup
    out = tmp_path_factory.mktemp("runs")
    for run_id, extra in (("before", []), ("after", ["--learning-rate", "1e-3"])):
        result = cli("run", *arguments, *extra, "--out", str(out), "--run-id", run_id, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
    return out / "before", out / "after"


def regime_rows(run: Path) -> list[dict]:
    return [row for row in read_rows(run / "results.csv") if row["kind"] == "regime"]


# --- model cards ------------------------------------------------------------------------------------------------
def test_every_saved_model_has_a_card_with_every_field(two_runs):
    from sentence_transformers import SentenceTransformer

    run = two_runs[0]
    rows = regime_rows(run)
    assert {row["system"] for row in rows} == {"batch-sampling", "self-distillation", "teacher-distillation"}
    initial = next(row for row in read_rows(run / "results.csv") if row["kind"] == "initial")
    model = json.loads((run / "manifest.json").read_text())["config"]["encoder"]["model"]
    for row in rows:
        folder = run / "models" / row["system"]
        card = (folder / "README.md").read_text()
        assert f"**Base model:** `{model}`" in card
        assert f"**Regime:** {row['regime_name']}" in card
        for parameter in row["parameters"].split(";"):
            assert f"`{parameter}`" in card
        assert f"**Data fraction:** {row['data_fraction']}" in card
        assert f"a budget of {int(row['examples_budget'])} (query, positive, negative) triples" in card
        assert f"**Examples consumed:** {int(row['examples_consumed'])} in {int(row['steps'])} steps" in card
        assert f"**Wall-clock:** {float(row['charged_wall_s']):.1f} s" in card
        assert f"**Accelerator-hours:** {float(row['charged_gpu_hours']):.5f}" in card
        assert "**Energy:** not measured (--no-energy)" in card and "**CO2:** not measured" in card
        assert f"#### {row['eval_set']} ({row['queries']} queries)" in card
        assert f"| nDCG@10 | {float(row['nDCG@10']):.4f} | {float(initial['nDCG@10']):.4f} |" in card
        assert "```bibtex" in card and ARXIV[row["system"]] in card
        assert f'SentenceTransformer("{run}/models/{row["system"]}")' in card
        assert f'pyterrier_dr.SBertBiEncoder("{run}/models/{row["system"]}")' in card
        assert "huggingface-cli upload" in card
        metadata = yaml.safe_load(card.split("---\n")[1])
        metrics = {m["name"]: m["value"] for m in metadata["model-index"][0]["results"][0]["metrics"]}
        assert metrics["nDCG@10"] == pytest.approx(float(row["nDCG@10"]), abs=1e-6)
        loaded = SentenceTransformer(str(folder), device="cpu")  # the card did not break the folder
        assert loaded.encode(["a query"]).shape == (1, 32)


def test_report_rerenders_the_cards_of_an_earlier_run(two_runs):
    """`report` writes the cards again from the saved files, so a run made before cards existed gets them."""
    run = two_runs[1]
    card = run / "models" / "self-distillation" / "README.md"
    written = card.read_text()
    card.write_text("the card sentence-transformers wrote when saving")
    result = cli("report", str(run))
    assert result.returncode == 0, result.stderr[-3000:]
    assert card.read_text() == written
    assert "3 model cards" in " ".join(result.stderr.split())


# --- compare ----------------------------------------------------------------------------------------------------
def test_compare_prints_the_systems_side_by_side_and_writes_the_csv(two_runs, tmp_path):
    before, after = two_runs
    target = tmp_path / "table.csv"
    result = cli("compare", str(before), str(after), "--out", str(target))
    assert result.returncode == 0, result.stderr[-3000:]
    systems = [row["system"] for row in read_rows(before / "results.csv")]
    for system in ("bm25", "initial", "batch-sampling", "self-distillation", "teacher-distillation"):
        assert system in result.stdout  # the teacher's long name may wrap in the table: checked in the CSV
    assert "x first" in result.stdout and "before" in result.stdout and "after" in result.stdout
    written = read_rows(target)
    assert [(row["system"], row["run"]) for row in written] == [(s, r) for s in systems for r in ("before", "after")]
    first = {row["system"]: row for row in read_rows(before / "results.csv")}
    second = {row["system"]: row for row in read_rows(after / "results.csv")}
    moved = 0
    for row in written:
        mine = (first if row["run"] == "before" else second)[row["system"]]
        assert float(row["nDCG@10"]) == float(mine["nDCG@10"])
        expected = float(mine["nDCG@10"]) / float(first[row["system"]]["nDCG@10"])
        assert float(row["nDCG@10 ratio"]) == pytest.approx(expected)
        if row["kind"] == "regime":
            wall = float(mine["charged_wall_s"]) / float(first[row["system"]]["charged_wall_s"])
            assert float(row["charged_wall_s ratio"]) == pytest.approx(wall)
            assert f"{wall:.2f}x" in result.stdout
        else:
            assert row["charged_wall_s"] == ""  # BM25, the initial encoder and the teacher are charged nothing
        moved += not math.isclose(expected, 1.0)
    assert moved > 0, "the two learning rates gave the same nDCG@10 everywhere: the ratios test nothing"


def test_compare_writes_compare_csv_in_the_current_folder_by_default(two_runs, tmp_path):
    before, after = two_runs
    result = cli("compare", str(before), str(after), cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(read_rows(tmp_path / "compare.csv")) == 2 * len(read_rows(before / "results.csv"))
    assert not (before / "compare.csv").exists() and not (after / "compare.csv").exists()


def unfinished(folder: Path) -> Path:
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"run_id": folder.name, "state": "running"}))
    (folder / "results.csv").write_text("eval_set,system,nDCG@10\nx,initial,0.5\n")
    return folder


def other_systems(folder: Path) -> Path:
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"run_id": folder.name, "state": "finished"}))
    (folder / "results.csv").write_text("eval_set,system,kind,nDCG@10\nelsewhere,mine,regime,0.5\n")
    return folder


BAD_INPUT = {
    "one run": (lambda tmp, runs: [runs[0]], ["compare needs at least two runs, got 1", "two or more"]),
    "no run": (lambda tmp, runs: [], ["compare needs at least two runs, got 0"]),
    "no folder": (lambda tmp, runs: [runs[0], tmp / "missing"], ["missing is not a folder", "finished runs"]),
    "not a run": (lambda tmp, runs: [runs[0], tmp], ["not a finished run (results.csv and manifest.json missing)"]),
    "unfinished": (lambda tmp, runs: [unfinished(tmp / "half"), runs[0]], ["'running'", "--resume half"]),
    "the same twice": (lambda tmp, runs: [runs[0], runs[0]], ["the same run is named twice"]),
    "nothing in common": (
        lambda tmp, runs: [runs[0], other_systems(tmp / "other")],
        ["no system on the same evaluation set in common", "other: mine", "compare runs of the same systems"],
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_to_compare_is_one_line(case, two_runs, tmp_path):
    make, words = BAD_INPUT[case]
    paths = [str(path) for path in make(tmp_path, two_runs)]
    result = cli("compare", *paths, "--out", str(tmp_path / "out.csv"))
    assert_one_line_error(result, *words)
    assert not (tmp_path / "out.csv").exists()


def test_an_unwritable_out_is_one_line(two_runs, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    result = cli("compare", *map(str, two_runs), "--out", str(blocker / "compare.csv"))
    assert_one_line_error(result, "cannot write", "--out")
    assert blocker.read_text() == "keep me" and os.listdir(tmp_path) == ["file"]
