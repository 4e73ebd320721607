"""benchmarks/scale.py at a tiny N: it runs the toolkit's data path on its synthetic MS MARCO folder and ends
with the line the issue asks for, within the 64-byte target."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py"


def test_scale_ends_with_bytes_per_triple_within_the_target():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--triples", "2000"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("2,000 triples")
    match = re.fullmatch(r"bytes per triple: (\d+\.\d)", lines[-1])
    assert match, lines[-1]
    assert 0 < float(match.group(1)) <= 64


def test_scale_refuses_a_bad_count_in_one_line():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--triples", "many"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "not a whole number" in result.stderr and "Traceback" not in result.stderr
