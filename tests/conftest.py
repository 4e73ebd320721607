"""Shared fixtures: an offline SciFact for the end-to-end tests (ir_datasets reads it from IR_DATASETS_HOME)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_COPY = REPO.parent / "shared" / "ir_datasets"
SCIFACT = Path("beir") / "scifact" / "source.zip"


@pytest.fixture(scope="session")
def ir_datasets_home(tmp_path_factory) -> Path:
    """IR_DATASETS_HOME holding SciFact: the one set in the environment, else a writable copy of ../shared."""
    configured = os.environ.get("IR_DATASETS_HOME")
    if configured and (Path(configured) / SCIFACT).exists():
        return Path(configured)
    if not (SHARED_COPY / SCIFACT).exists():
        pytest.skip("SciFact not found: set IR_DATASETS_HOME to a seeded copy (see README, 'No network')")
    home = tmp_path_factory.mktemp("ir_datasets")
    shutil.copytree(SHARED_COPY, home, dirs_exist_ok=True)
    for path in home.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    os.environ["IR_DATASETS_HOME"] = str(home)
    return home
