"""report.md and verdicts.csv rendered from a hand-made run folder alone, as `python -m benchmark report` does."""

from __future__ import annotations

import csv
import json

import pandas as pd

from benchmark.reporting import claims_report
from tests.benchmark.reporting.test_claims import (
    BAD,
    EVAL,
    FULL,
    GOOD,
    REFERENCE,
    SELF,
    SMALL,
    STATIC,
    claim_2_frame,
    regime_row,
    swapped,
    write_runs,
)


def write_run(run_dir, static: bool) -> None:
    """results.csv, phases.csv, curves.csv, manifest.json, leakage.json and the run files of a finished run."""
    frame = claim_2_frame()
    if not static:
        frame = frame[frame["system"] != STATIC]
    full = regime_row(REFERENCE, 1.0, FULL, charged_wall_s=500.0, examples_budget=7400, examples_consumed=7400)
    frame = pd.concat([frame, pd.DataFrame([full])], ignore_index=True)
    for column in ("nDCG@10", "RR@10", "R@100", "R@1000"):
        frame[column] = 0.5
    frame["status"] = "ok"
    frame.to_csv(run_dir / "results.csv", index=False)
    pd.DataFrame(
        [{"phase": "train", "cell": f"{SELF}|f=0.135|seed=1", "charged_to": SELF, "wall_s": 90.0, "reused": False}]
    ).to_csv(run_dir / "phases.csv", index=False)
    pd.DataFrame(
        columns=["regime", "data_fraction", "seed", "step", "examples_seen", "elapsed_s", "ndcg_at_10"]
    ).to_csv(run_dir / "curves.csv", index=False)
    manifest = {
        "run_id": run_dir.name,
        "command": ["python", "-m", "benchmark", "run"],
        "config": {"reference": REFERENCE, "encoder": {"model": "tiny"}, "data": {"dataset": "beir/scifact"}},
        "evaluation_sets": [EVAL],
        "seeds": [1],
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    leakage = {
        EVAL: {
            "relevant_documents": 283,
            "relevant_documents_that_are_training_positives": 181,
            "queries": 300,
            "queries_with_a_training_query_text": 2,
            "same_corpus_as_training": True,
        }
    }
    (run_dir / "leakage.json").write_text(json.dumps(leakage))
    write_runs(run_dir, {"initial": BAD, FULL: GOOD, SMALL: swapped(GOOD, 1), STATIC: GOOD})


def verdict_rows(run_dir) -> list[dict]:
    with open(run_dir / "verdicts.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def test_report_renders_both_verdicts_leakage_and_rules_from_the_saved_files(tmp_path):
    write_run(tmp_path, static=True)
    report = claims_report.render(tmp_path, 0.01).read_text()
    assert f"- {EVAL}: **supported**: equivalent within ±0.02 nDCG@10" in report  # the default margin
    assert "(c) TOST (statsmodels ttost_paired, margin ±0.02)" in report
    assert "the claim holds only when (a) teacher-distillation at 1.0 is significantly better" in report
    assert f"{EVAL}: 181 of its 283 relevant documents are also training positives (64%); 2 of its 300 queries" in (
        report
    )
    assert "Holds only in domain" in report and "add `--eval vaswani`" in report
    assert "(a) search cost at fraction 0.135: whole static search" in report
    rows = verdict_rows(tmp_path)
    assert [(r["claim"], r["eval_set"], r["verdict"]) for r in rows] == [
        ("1", EVAL, "supported"),
        ("2", EVAL, "supported"),
    ]
    assert rows[0]["in_domain"] == "True" and "TOST" in rows[0]["evidence"]

    # The same folder with another margin: re-rendered from the files, the verdict follows the new margin.
    claims_report.render(tmp_path, 0.01, margin=0.001)
    assert verdict_rows(tmp_path)[0]["verdict"] == "not supported"
    assert "margin ±0.001" in (tmp_path / "report.md").read_text()


def test_report_without_a_static_search_or_leakage(tmp_path):
    write_run(tmp_path, static=False)
    (tmp_path / "leakage.json").unlink()
    report = claims_report.render(tmp_path, 0.01).read_text()
    assert "**inconclusive**: not testable in this run: no static-margin search (add --tune" in report
    assert "Not measured in this run (no leakage.json" in report
    assert [r["verdict"] for r in verdict_rows(tmp_path)] == ["supported", "inconclusive"]
