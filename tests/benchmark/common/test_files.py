"""Results files: written atomically, so an interrupted write never leaves a half file or a stray temp file."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from benchmark.common import files
from benchmark.common.files import read_json, write_atomic, write_csv, write_json


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files that write_atomic creates beside its target."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_csv_round_trip(tmp_path):
    """Columns are the union of the rows' keys in first-seen order; missing values are empty."""
    rows = [{"regime": "self-distillation", "ndcg_at_10": 0.5, "seed": 1}, {"regime": "bm25", "extra": "x,y"}]
    path = tmp_path / "out" / "results.csv"
    write_csv(path, rows)
    with open(path, newline="") as stream:
        read = list(csv.DictReader(stream))
    assert list(read[0]) == ["regime", "ndcg_at_10", "seed", "extra"]
    assert read == [
        {"regime": "self-distillation", "ndcg_at_10": "0.5", "seed": "1", "extra": ""},
        {"regime": "bm25", "ndcg_at_10": "", "seed": "", "extra": "x,y"},
    ]
    assert "\r" not in path.read_text()


def test_csv_with_given_columns_ignores_extra_keys(tmp_path):
    """Explicit columns fix the header even for no rows; keys outside them are dropped."""
    path = tmp_path / "phases.csv"
    write_csv(path, [{"phase": "train", "wall_s": 1.5, "secret": 1}], columns=["phase", "wall_s"])
    assert path.read_text() == "phase,wall_s\ntrain,1.5\n"
    write_csv(path, [], columns=["phase", "wall_s"])
    assert path.read_text() == "phase,wall_s\n"


def test_json_round_trip(tmp_path):
    """Nested data reads back equal; non-JSON values are written as their str()."""
    data = {"seed": 3, "fractions": [0.135, 1.0], "config": {"model": "m", "path": Path("/a/b")}, "none": None}
    path = tmp_path / "manifest.json"
    write_json(path, data)
    read = read_json(path)
    assert read == {"seed": 3, "fractions": [0.135, 1.0], "config": {"model": "m", "path": "/a/b"}, "none": None}
    assert path.read_text().endswith("\n")
    assert leftovers(tmp_path) == []


class Unprintable:
    """str() of it fails, so json.dumps(default=str) fails while serialising."""

    def __str__(self) -> str:
        raise RuntimeError("cannot serialise")


def test_failed_serialisation_keeps_the_previous_file(tmp_path):
    """When serialising fails, the file keeps its previous content and nothing else is written."""
    path = tmp_path / "manifest.json"
    write_json(path, {"version": 1})
    with pytest.raises(RuntimeError, match="cannot serialise"):
        write_json(path, {"version": 2, "bad": Unprintable()})
    assert read_json(path) == {"version": 1}
    assert leftovers(tmp_path) == []


def test_failed_rename_keeps_the_previous_file_and_removes_the_temporary(tmp_path, monkeypatch):
    """A failure after the temporary file is written (at the rename) leaves the old file and no temp file."""
    path = tmp_path / "results.csv"
    write_csv(path, [{"a": 1}])
    before = path.read_text()

    def failing_replace(source, target):
        assert Path(source).exists() and Path(source).parent == tmp_path  # written beside the target
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_csv(path, [{"a": 2}])
    assert path.read_text() == before
    assert leftovers(tmp_path) == []


def test_interrupt_during_write_removes_the_temporary(tmp_path, monkeypatch):
    """Even a KeyboardInterrupt (not an Exception) during the write cleans up and keeps the old file."""
    path = tmp_path / "curves.csv"
    write_atomic(path, "old\n")

    def interrupted_fsync(descriptor):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert leftovers(tmp_path) == []


def test_write_replaces_the_file(tmp_path):
    """A second write replaces the content entirely (no appending, no leftover tail)."""
    path = tmp_path / "report.md"
    write_atomic(path, "a much longer first version\n")
    write_atomic(path, "short\n")
    assert path.read_text() == "short\n"
    assert os.listdir(tmp_path) == ["report.md"]


def test_publish_moves_complete_files_into_place(tmp_path):
    """Files a library wrote elsewhere replace their namesakes one rename each; others already there stay."""
    staging, target = tmp_path / "staging", tmp_path / "runs"
    (staging / "sub").mkdir(parents=True)
    (staging / "bm25.res.gz").write_bytes(b"new run")
    (staging / "sub" / "qrels.tsv").write_text("q\td\t1\n")
    target.mkdir()
    (target / "bm25.res.gz").write_bytes(b"old run")
    (target / "initial.res.gz").write_bytes(b"kept")
    files.publish(staging, target)
    assert (target / "bm25.res.gz").read_bytes() == b"new run"
    assert (target / "sub" / "qrels.tsv").read_text() == "q\td\t1\n"
    assert (target / "initial.res.gz").read_bytes() == b"kept"
    assert not staging.exists()


def test_rows_read_back_are_written_back_byte_for_byte(tmp_path):
    """`evaluate` rewrites results.csv with rows added: the rows already there must keep their exact bytes, quoting
    and all."""
    path = tmp_path / "results.csv"
    write_csv(path, [{"a": 0.1 + 0.2, "b": 'say "hi", twice', "c": None}, {"a": float("nan"), "b": "x", "c": True}])
    before = path.read_bytes()
    rows, columns = files.read_csv(path)
    assert columns == ["a", "b", "c"] and rows[0]["b"] == 'say "hi", twice'
    write_csv(path, rows, columns)
    assert path.read_bytes() == before
    write_csv(path, [*rows, {"a": 1, "b": "new", "d": "later"}], [*columns, "d"])
    lines = path.read_text().splitlines()
    assert lines[1:3] == [f"{line}," for line in before.decode().splitlines()[1:3]]  # one more, empty, column
