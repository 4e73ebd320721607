"""Bad input through the real CLI: one line naming the problem and the fix, exit status 2, nothing damaged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        cwd=cwd,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_list_shows_every_regime_with_its_parameters():
    """`list` is how a user discovers regimes and their defaults."""
    result = cli("list")
    assert result.returncode == 0
    for expected in ("self-distillation", "target", "adaptive", "in_batch", "error", "l2"):
        assert expected in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--regimes", "nope"], ["unknown regime 'nope'", "benchmark list"]),
        (["--regimes", "self-distillation:colour=red"], ["no parameter 'colour'"]),
        (["--regimes", "self-distillation:error=l3"], ["error='l3'"]),
        (["--regimes", "self-distillation:target=distributed"], ["in_batch=false"]),
        (["--data-fraction", "1.5"], ["outside (0, 1]"]),
        (["--data-fraction", "0"], ["outside (0, 1]"]),
        (["--data-fraction", "abc"], ["not a number"]),
        (["--bogus"], ["unrecognized arguments", "--help"]),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, words, tmp_path):
    result = cli("run", *args, "--out", str(tmp_path / "out"))
    assert_one_line_error(result, *words)
    assert not (tmp_path / "out").exists()


def test_unknown_dataset_id(tmp_path):
    result = cli("run", "--dataset", "no-such/dataset", "--out", str(tmp_path), "--no-energy")
    assert_one_line_error(result, "unknown dataset 'no-such/dataset'")


def test_folder_not_in_beir_layout(tmp_path):
    folder = tmp_path / "not-beir"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("")
    result = cli("run", "--dataset", str(folder), "--out", str(tmp_path / "out"), "--no-energy")
    assert_one_line_error(result, "not a BEIR folder", "queries.jsonl")


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    result = cli("run", "--out", str(blocker), "--no-energy")
    assert_one_line_error(result, "cannot write results", "--out")
    assert blocker.read_text() == "keep me"


def test_existing_run_is_not_overwritten(tmp_path):
    run = tmp_path / "out" / "mine"
    run.mkdir(parents=True)
    (run / "results.csv").write_text("precious")
    result = cli("run", "--out", str(tmp_path / "out"), "--run-id", "mine", "--no-energy")
    assert_one_line_error(result, "already holds results")
    assert (run / "results.csv").read_text() == "precious"


def test_dataset_missing_offline_fails_fast(tmp_path):
    """With no network and no local copy, ir_datasets cannot download: a clear line, never a hang."""
    result = cli(
        "run",
        "--out",
        str(tmp_path / "out"),
        "--no-energy",
        env={"IR_DATASETS_HOME": str(tmp_path / "empty-home")},
    )
    assert_one_line_error(result, "IR_DATASETS_HOME")


def test_unknown_model(tmp_path, ir_datasets_home):
    result = cli(
        "run",
        "--model",
        str(tmp_path / "no-model-here"),
        "--out",
        str(tmp_path / "out"),
        "--no-energy",
        "--cache-dir",
        str(tmp_path / "cache"),
        env={"IR_DATASETS_HOME": str(ir_datasets_home)},
    )
    assert_one_line_error(result, "could not be loaded", "local Hugging Face folder")
