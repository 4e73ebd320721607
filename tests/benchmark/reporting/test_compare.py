"""compare on hand-made finished runs: matching by system and evaluation set, ratios to the first run, the CSV."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from benchmark.common.errors import UsageError
from benchmark.reporting import compare

COLUMNS = [
    "eval_set",
    "system",
    "kind",
    "nDCG@10",
    "nDCG@10 sig",
    "charged_wall_s",
    "charged_energy_kwh",
    "energy_mode",
]


def finished_run(folder: Path, rows: list[tuple], device: str = "cpu") -> Path:
    """rows: (eval set, system, kind, nDCG@10, sig, wall s, kWh, energy mode); no R@100 column."""
    folder.mkdir(parents=True)
    manifest = {"run_id": folder.name, "state": "finished", "device": device, "hardware": {"cpu": "EPYC", "gpus": []}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with open(folder / "results.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return folder


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    first = finished_run(
        tmp_path / "cpu" / "run",
        [
            ("scifact", "initial", "initial", 0.6457, "", "", "", ""),
            ("scifact", "self-distillation", "regime", 0.6721, "+", 120.0, 0.004, "estimated"),
            ("scifact", "teacher-distillation", "regime", 0.6656, "", 0.0, 0.002, "estimated"),
            ("vaswani", "self-distillation", "regime", 0.30, "", 120.0, 0.004, "estimated"),
        ],
    )
    second = finished_run(
        tmp_path / "gpu" / "run",  # the same run id on another machine: labelled by its path
        [
            ("scifact", "self-distillation", "regime", 0.6800, "+", 30.0, 0.010, "measured"),
            ("scifact", "initial", "initial", 0.6457, "", "", "", ""),
            ("scifact", "teacher-distillation", "regime", 0.6600, "", 40.0, 0.012, "measured"),
        ],
        device="cuda",
    )
    third = finished_run(
        tmp_path / "third",
        [
            ("scifact", "self-distillation", "regime", 0.6721, "", 60.0, 0.006, "estimated"),
            ("scifact", "teacher-distillation", "regime", 0.6656, "", 80.0, "", "not measured"),
            ("scifact", "initial", "initial", 0.6457, "", "", "", ""),
        ],
    )
    return [first, second, third]


def test_systems_every_run_has_in_the_first_runs_order_with_ratios(runs):
    loaded = compare.load_runs(runs)
    assert [run.label for run in loaded] == [str(runs[0]), str(runs[1]), "third"]
    keys, left_out = compare.common_keys(loaded)
    assert keys == [("scifact", "initial"), ("scifact", "self-distillation"), ("scifact", "teacher-distillation")]
    assert left_out == [("vaswani", "self-distillation")]
    assert compare.measures(loaded) == ["nDCG@10"]  # no R@100 in these runs: not shown
    rows = {(r["system"], r["run"]): r for r in compare.comparison_rows(loaded, keys, ["nDCG@10"])}
    mine = rows[("self-distillation", str(runs[1]))]
    assert mine["nDCG@10 ratio"] == pytest.approx(0.6800 / 0.6721)
    assert mine["charged_wall_s ratio"] == pytest.approx(30.0 / 120.0)
    assert mine["charged_energy_kwh ratio"] == pytest.approx(0.010 / 0.004)
    assert (mine["nDCG@10 sig"], mine["energy_mode"], mine["device"]) == ("+", "measured", "cuda")
    assert rows[("self-distillation", str(runs[0]))]["charged_wall_s ratio"] == 1.0
    assert math.isnan(rows[("teacher-distillation", "third")]["charged_wall_s ratio"])  # the first's is 0
    assert math.isnan(rows[("teacher-distillation", "third")]["charged_energy_kwh ratio"])  # not measured
    assert math.isnan(rows[("initial", "third")]["charged_wall_s"])


def test_the_table_and_the_csv(runs, tmp_path, capsys):
    assert compare.compare(runs, tmp_path) == 0
    printed = capsys.readouterr()
    assert "0.25x" in printed.out and "2.50x" in printed.out and "third" in printed.out
    assert "vaswani" in printed.err  # left out, said so
    written = list(csv.DictReader(open(tmp_path / "compare.csv")))
    assert len(written) == 9
    assert written[4]["system"] == "self-distillation" and float(written[4]["charged_wall_s ratio"]) == 0.25
    assert written[0]["charged_wall_s"] == ""  # missing, not "nan"


def test_out_may_name_a_file(runs, tmp_path):
    target = tmp_path / "new" / "mine.csv"
    compare.compare(runs[:2], target)
    assert len(list(csv.DictReader(open(target)))) == 6


def test_no_system_in_common(runs, tmp_path):
    other = finished_run(tmp_path / "other", [("nfcorpus", "initial", "initial", 0.3, "", "", "", "")])
    with pytest.raises(UsageError, match="no system on the same evaluation set in common"):
        compare.common_keys(compare.load_runs([runs[0], other]))
