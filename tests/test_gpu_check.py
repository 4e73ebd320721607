"""benchmarks/gpu_check.sh on a machine without CUDA: one line saying it needs a GPU, exit status 0."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the check runs the main command in full")
def test_gpu_check_without_cuda_says_so_in_one_line_and_exits_0(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [
        "gpu_check: needs a CUDA GPU (torch.cuda.is_available() is False here); nothing was run"
    ]
    assert not any(tmp_path.iterdir())  # nothing was started
