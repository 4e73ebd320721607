"""A negative control through the real CLI: with learning rate 0 nothing is learned, so no claim may be supported.

The tiny model is trained by every regime under test at learning rate 0 (self-distillation at 0.135, the reference
at 0.135 and, by --reference-fraction's default, at 1.0): every trained model equals the untrained encoder, and the
yardstick guard must turn claim 1 into "inconclusive"; claim 2 has no static search and is not testable.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

from tests.benchmark.conftest import write_beir
from tests.tiny import save_tiny_bert

SUPPORTED = re.compile(r"(?<!not )\bsupported\b")


def test_learning_rate_zero_is_accepted_and_supports_no_claim(tmp_path):
    model, folder = save_tiny_bert(tmp_path / "bert"), write_beir(tmp_path / "beir")
    arguments = [
        "run",
        "--regimes",
        "self-distillation,teacher-distillation:teacher=bi-encoder:" + str(model),
        "--reference",
        "teacher-distillation",
        "--learning-rate",
        "0",
        "--dataset",
        str(folder),
        "--model",
        str(model),
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--max-doc-length",
        "32",
        "--max-query-length",
        "16",
        "--batch-size",
        "2",
        "--validate-every",
        "1",
        "--negatives-per-positive",
        "2",
        "--no-energy",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "out"),
        "--run-id",
        "control",
    ]
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "IR_DATASETS_HOME": str(tmp_path / "irds"),
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "benchmark", *arguments], capture_output=True, text=True, timeout=600, env=environment
    )
    assert result.returncode == 0, result.stderr[-3000:]
    said = " ".join(result.stderr.split())
    assert "warning: learning rate 0: nothing will be learned (a negative control)" in said

    run = tmp_path / "out" / "control"
    with open(run / "results.csv", newline="") as stream:
        results = list(csv.DictReader(stream))
    fractions = {(row["regime_name"], row["data_fraction"]) for row in results if row["kind"] == "regime"}
    assert fractions == {
        ("self-distillation", "0.135"),
        ("teacher-distillation", "0.135"),
        ("teacher-distillation", "1.0"),  # --reference-fraction 1.0 by default
    }
    initial = {row["nDCG@10"] for row in results if row["system"] == "initial"}
    assert {row["nDCG@10"] for row in results if row["kind"] == "regime"} == initial  # nothing was learned

    report = (run / "report.md").read_text()
    verdicts = (run / "verdicts.csv").read_text()
    assert not SUPPORTED.search(report), report
    assert not SUPPORTED.search(verdicts), verdicts
    with open(run / "verdicts.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    claim_1 = [row for row in rows if row["claim"] == "1"]
    assert claim_1 and all(row["verdict"] == "inconclusive" for row in claim_1)
    assert all("the yardstick is no better than no training" in row["reason"] for row in claim_1)
    assert [row["verdict"] for row in rows if row["claim"] == "2"] == ["inconclusive"]
    assert "181" not in report and "of its 3 queries have the same text as a training query" in report
