"""Offline data for the whole test session, in place before anything imports ir_datasets.

ir_datasets reads ``IR_DATASETS_HOME`` when it is imported (its BEIR and Vaswani modules fix their cache paths
then), so setting it in a fixture is too late. ``pytest_configure`` runs before any test module is collected: when
``IR_DATASETS_HOME`` does not already hold the data, it points it at a writable copy of ``../shared/ir_datasets``
(ir_datasets writes its index files next to the archives). CLI subprocesses inherit the variable. Where neither holds
the data, the tests that need it skip with one line saying how to seed it; nothing ever downloads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_COPY = REPO.parent / "shared" / "ir_datasets"
SCIFACT = Path("beir") / "scifact" / "source.zip"
VASWANI = Path("vaswani") / "npl.tar.gz"
NOT_SEEDED = (
    "offline data not found: put ../shared/ir_datasets beside the checkout, or set IR_DATASETS_HOME to a writable "
    "copy holding beir/scifact/source.zip and vaswani/npl.tar.gz (README, 'No network')"
)

_copy: Path | None = None  # the session's writable copy, removed at the end


def holds_data(home: Path) -> bool:
    return (home / SCIFACT).exists() and (home / VASWANI).exists()


def seed_offline_data() -> Path | None:
    """``IR_DATASETS_HOME`` when it holds the data, else a fresh writable copy of ../shared set as it; None when
    neither is there."""
    global _copy
    configured = os.environ.get("IR_DATASETS_HOME")
    if configured and holds_data(Path(configured)):
        return Path(configured)
    if not holds_data(SHARED_COPY):
        return None
    _copy = Path(tempfile.mkdtemp(prefix="ir_datasets-tests-"))
    shutil.copytree(SHARED_COPY, _copy, dirs_exist_ok=True)
    for path in [_copy, *_copy.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)  # shared/ is read-only; ir_datasets writes beside the archives
    os.environ["IR_DATASETS_HOME"] = str(_copy)
    return _copy


def pytest_configure(config) -> None:
    config.offline_data_home = seed_offline_data()


def pytest_unconfigure(config) -> None:
    if _copy is not None:
        shutil.rmtree(_copy, ignore_errors=True)


@pytest.fixture(scope="session")
def ir_datasets_home(pytestconfig) -> Path:
    """IR_DATASETS_HOME holding SciFact and Vaswani (seeded at start-up), or a skip saying how to seed it."""
    home = pytestconfig.offline_data_home
    if home is None:
        pytest.skip(NOT_SEEDED)
    return home
