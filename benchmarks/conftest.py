"""The pytest-benchmark suite of the side-by-side comparisons: ``python -m pytest benchmarks/ --benchmark-only``.

Not collected by ``python -m pytest`` (pyproject's testpaths is ``tests``). Benchmarks run in one process: the
project's ``-n 2`` (pytest-xdist) is turned off here, since pytest-benchmark refuses to time in parallel workers
and two benchmarks sharing two cores would time each other. Sizes are small by default, so the suite finishes in
minutes on 2 cores; environment variables give the full size (see test_peers.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    if hasattr(config.option, "numprocesses"):
        config.option.numprocesses = 0  # pytest-xdist then sets dist to "no"
        config.option.dist = "no"


@pytest.fixture(scope="session", autouse=True)
def scifact_offline() -> None:
    """The comparisons read beir/scifact through ir_datasets; without it here, skip with how to get it."""
    home = Path(os.environ.get("IR_DATASETS_HOME", Path.home() / ".ir_datasets"))
    if not (home / "beir" / "scifact" / "source.zip").exists():
        pytest.skip(f"beir/scifact is not in {home}; set IR_DATASETS_HOME to a copy holding it (README, 'No network')")
