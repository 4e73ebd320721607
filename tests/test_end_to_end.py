"""The real CLI with the real all-MiniLM-L6-v2 on a slice of SciFact, and the initial encoder's published score."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scifact_slice import write_scifact_slice

MEASURES = ("nDCG@10", "RR@10", "R@100", "R@1000")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def finished_run(ir_datasets_home, tmp_path_factory):
    """One run of the CLI on a SciFact slice: 60 training queries, 20 test queries, about 350 documents."""
    base = tmp_path_factory.mktemp("e2e")
    folder = write_scifact_slice(base / "scifact-slice")
    other = write_scifact_slice(base / "other-slice", train_queries=0, test_queries=15, other_docs=100, skip=40)
    command = [
        sys.executable,
        "-m",
        "benchmark",
        "run",
        "--regimes",
        "all",
        "--dataset",
        str(folder),
        "--eval",
        f"{folder},{other}",
        "--data-fraction",
        "0.5",
        "--reference-fraction",
        "none",  # system names stay plain; the full-budget reference is tested in test_negative_control.py
        "--validate-every",
        "2",
        "--out",
        str(base / "results"),
        "--run-id",
        "e2e",
        "--cache-dir",
        str(base / "cache"),
    ]
    env = {**os.environ, "IR_DATASETS_HOME": str(ir_datasets_home), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return base / "results" / "e2e", result


TEACHER = "teacher:ensemble:bm25+bi-encoder:sentence-transformers/all-MiniLM-L6-v2"
REGIMES = ("self-distillation", "teacher-distillation", "batch-sampling")


def test_results_have_bm25_initial_teacher_and_regime_rows(finished_run):
    directory, _ = finished_run
    everything = read_csv(directory / "results.csv")
    assert {row["eval_set"] for row in everything} == {
        f"{directory.parent.parent}/scifact-slice:test",
        f"{directory.parent.parent}/other-slice:test",
    }
    rows = {row["system"]: row for row in everything if row["eval_set"].endswith("scifact-slice:test")}
    assert set(rows) == {"bm25", "initial", TEACHER, *REGIMES}
    assert rows[TEACHER]["kind"] == "teacher"
    for row in rows.values():
        for measure in MEASURES:
            assert 0.0 <= float(row[measure]) <= 1.0
        assert row["queries"] == "20"  # the training slice's test split
    for regime in REGIMES:
        trained = rows[regime]
        assert trained["status"] == "ok", trained["status"]
        assert int(trained["examples_consumed"]) == int(trained["examples_budget"])
        assert int(trained["examples_scheduled_at_nonzero_lr"]) == int(trained["examples_scheduled"])
        assert int(trained["examples_scheduled"]) == int(trained["examples_budget"])
        assert float(trained["charged_wall_s"]) > 0
        assert trained["energy_mode"] in {"measured", "estimated"}
        assert trained["reference"] == "teacher-distillation"
    assert float(rows["teacher-distillation"]["speedup_wall"]) == 1.0
    # the speedup against the raw phase records (phases.csv), not the report's own charged columns
    phases = read_csv(directory / "phases.csv")

    def walls(regime: str) -> float:
        mine = [p for p in phases if p["charged_to"] == regime and not p["aggregates"]]
        assert "train" in {p["phase"] for p in mine}
        return sum(float(p["wall_s"]) for p in mine)

    assert float(rows["self-distillation"]["speedup_wall"]) == pytest.approx(
        walls("teacher-distillation") / walls("self-distillation"), rel=1e-6
    )


def test_budget_is_ceil_of_fraction_and_recorded(finished_run):
    directory, _ = finished_run
    manifest = json.loads((directory / "manifest.json").read_text())
    total = manifest["data"]["training_triples"]
    rows = {row["system"]: row for row in read_csv(directory / "results.csv")}
    assert int(rows["self-distillation"]["examples_consumed"]) == math.ceil(0.5 * total)
    assert manifest["config"]["data_fractions"] == [0.5]
    assert "dense retrieval of all" in manifest["validation"] and "whole corpus" in manifest["validation"]
    assert manifest["versions"]["torch"].startswith("2.")
    assert manifest["hardware"]["cpu_cores"] >= 1


def test_every_phase_is_measured(finished_run):
    directory, _ = finished_run
    phases = read_csv(directory / "phases.csv")
    names = {row["phase"] for row in phases}
    assert {"prepare-data", "mine", "prepare-validation", "validate", "train", "index", "evaluate"} <= names
    for row in phases:
        assert float(row["wall_s"]) >= 0 and float(row["cpu_s"]) >= 0
        assert float(row["gpu_hours"]) == 0.0  # a CPU run
        assert float(row["energy_kwh"]) > 0
        assert float(row["peak_rss_mb"]) > 0

    def charged(regime: str) -> set[str]:
        return {row["phase"] for row in phases if row["charged_to"] == regime}

    assert charged("self-distillation") == {"train", "validate"}
    # teacher-calibration: the teacher scores every training triple (budget-independent normalisation and scale);
    # teacher-scale: the initial encoder's margins the scale is fitted to; the budget's own pairs are among those
    # scored, so teacher-distillation needs no further teacher-scoring, while TAS-B's in-batch pairs do
    teacher = {"teacher-calibration", "teacher-scale", "train", "validate"}
    assert charged("teacher-distillation") == teacher
    assert charged("batch-sampling") == teacher | {"cluster", "teacher-scoring"}
    assert "pairwise-accuracy" in {row["phase"] for row in phases if not row["charged_to"]}


def test_curves_and_run_files(finished_run):
    directory, _ = finished_run
    curve = read_csv(directory / "curves.csv")
    assert [int(row["step"]) for row in curve][0] == 0
    assert int(curve[-1]["examples_seen"]) > 0
    assert all(0 <= float(row["ndcg_at_10"]) <= 1 for row in curve)
    run_files = sorted(p.name for p in (directory / "runs").rglob("*.res.gz"))
    assert len(run_files) == 12 and "self-distillation.res.gz" in run_files and "bm25.res.gz" in run_files


def test_trained_model_loads_in_sentence_transformers(finished_run):
    from sentence_transformers import SentenceTransformer

    directory, _ = finished_run
    model = SentenceTransformer(str(directory / "models" / "self-distillation"), device="cpu")
    vector = model.encode(["a claim about biomaterials"])
    assert vector.shape == (1, 384)
    assert abs(float((vector**2).sum()) - 1.0) < 1e-4  # cosine: the Normalize module was saved


def test_report_and_plots_are_written_and_rerendered(finished_run):
    """report.md carries both verdicts and links the plots; `report` re-renders the same tables from the files."""
    directory, result = finished_run
    report = (directory / "report.md").read_text()
    assert "Claim 1" in report and "Claim 2" in report
    for picture in ("validation-over-time.png", "effectiveness-over-fraction.png", "cost-by-phase.png"):
        assert (directory / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({picture})" in report
    again = subprocess.run(
        [sys.executable, "-m", "benchmark", "report", str(directory)], capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-2000:]
    first = result.stdout[result.stdout.index("Effectiveness") :]
    assert again.stdout.strip() == first.strip()


def test_tables_are_printed(finished_run):
    _, result = finished_run
    assert "Effectiveness" in result.stdout and "Costs charged" in result.stdout
    assert "speedup wall" in result.stdout
    for regime in REGIMES:
        assert regime in result.stdout


def test_initial_encoder_matches_published_scifact_score(ir_datasets_home, tmp_path):
    """all-MiniLM-L6-v2 at 256 tokens scores nDCG@10 0.6451 on beir/scifact/test (MTEB); we must reproduce it."""
    from benchmark.data.bm25 import BM25Index
    from benchmark.data.collections import evaluation_collection
    from benchmark.encoder import BiEncoder, EncoderConfig
    from benchmark.evaluation.systems import build_index, experiment, retriever, topics_and_qrels

    collection = evaluation_collection("beir/scifact/test")
    encoder = BiEncoder(EncoderConfig(max_doc_length=256))
    index = build_index(encoder, collection, tmp_path / "index")
    topics, qrels = topics_and_qrels(collection, None)
    systems = {
        "bm25": BM25Index(collection, tmp_path / "cache").retriever(1000),
        "initial": retriever(encoder, index),
    }
    table = experiment(systems, topics, qrels, "initial", tmp_path / "runs").set_index("system")
    assert len(topics) == 300
    assert abs(table.loc["initial", "nDCG@10"] - 0.645) <= 0.005
    assert 0.6 < table.loc["bm25", "nDCG@10"] < 0.72
