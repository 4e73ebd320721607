"""Cells (regime x data fraction x seed) and the finished ones on disk, so that a resumed run skips them.

A cell writes ``cells/<cell>/started.json`` when it starts and ``cells/<cell>/cell.json`` only once its selected
model is in place under ``models/``: ``cell.json`` is the completion marker, written atomically, and holds all a
resumed run needs to rebuild the cell's rows (outcome, validation curve, the phases charged to it, the regime's
notes). A cell with the first file and not the second was cut off; it is trained again from scratch, which keeps
its result identical to an uninterrupted run's and its costs measured whole.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.common.files import read_json, write_json
from benchmark.measurement.phases import Meter, PhaseRecord
from benchmark.training import distributed
from benchmark.training.loop import CurvePoint, TrainingOutcome
from regimes import Regime

if TYPE_CHECKING:
    from benchmark.training.tuning import TuneResult

FINISHED = "cell.json"
STARTED = "started.json"


@dataclass
class Cell:
    """One training run of the grid: a regime at a data fraction with a seed."""

    regime: Regime
    fraction: float
    seed: int
    label: str = ""  # a name other than the regime's label: a --tune point, or the tuned system itself

    @property
    def name(self) -> str:
        """What the cell's rows and phases are named and charged to: its label, else the regime's."""
        return self.label or self.regime.label

    @property
    def id(self) -> str:
        return f"{self.name}|f={self.fraction}|seed={self.seed}"

    def system_name(self, grid: bool) -> str:
        """The row name in the results: the cell's name, with fraction and seed when the run is a grid."""
        return f"{self.name} f={self.fraction} seed={self.seed}" if grid else self.name


@dataclass
class RegimeRun:
    """A finished cell: its results row's name, budget, training outcome and selected model."""

    cell: Cell
    system: str
    budget: int
    outcome: TrainingOutcome
    model_dir: Path
    tune: TuneResult | None = None  # a --tune system: its search, whose selected point this run is

    @property
    def regime(self) -> Regime:
        return self.cell.regime

    @property
    def charged_cell(self) -> str:
        """The cell whose phases are this run's own cost: a tuned system's selected point, else its own cell."""
        return self.tune.selected_run.cell.id if self.tune else self.cell.id


@dataclass
class RunState:
    """What a run accumulates before it is written out."""

    directory: Path
    meter: Meter
    reference: str
    regime_runs: list[RegimeRun] = field(default_factory=list)  # the systems: regimes, then --tune systems
    tune_points: list[RegimeRun] = field(default_factory=list)  # every --tune grid point trained
    notes: dict = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)  # cell id -> trained, loaded, or trained again
    processes: distributed.Processes = distributed.ONE_PROCESS


def folder(directory: Path, cell: Cell) -> Path:
    """cells/<readable id>-<hash>: labels may hold any character, and two labels must not share a folder."""
    readable = re.sub(r"[^A-Za-z0-9._=-]+", "_", cell.id)
    return directory / "cells" / f"{readable}-{hashlib.sha1(cell.id.encode()).hexdigest()[:8]}"


def is_finished(path: Path) -> bool:
    return (path / FINISHED).exists()


def any_finished(directory: Path) -> bool:
    return any((directory / "cells").glob(f"*/{FINISHED}"))


def was_cut_off(directory: Path, cell: Cell) -> bool:
    """Started in an earlier attempt and never finished."""
    path = folder(directory, cell)
    return (path / STARTED).exists() and not is_finished(path)


def start(directory: Path, cell: Cell) -> Path:
    """Clear what a cut-off attempt left (checkpoints) and mark the cell as started."""
    path = folder(directory, cell)
    shutil.rmtree(path, ignore_errors=True)
    write_json(path / STARTED, {"cell": cell.id, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return path


def place_model(staging: Path, final: Path) -> None:
    """Move a fully saved model folder into place, so ``final`` never holds a half-written model."""
    shutil.rmtree(final, ignore_errors=True)  # left by an attempt cut off between this move and cell.json
    final.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(final)


def save(directory: Path, run: RegimeRun, records: list[PhaseRecord]) -> None:
    """Write the completion marker of a cell whose model is in place."""
    write_json(
        folder(directory, run.cell) / FINISHED,
        {
            "cell": run.cell.id,
            "system": run.system,
            "regime": run.cell.name,
            "settings": run.regime.settings,
            "data_fraction": run.cell.fraction,
            "seed": run.cell.seed,
            "budget": run.budget,
            "model_dir": run.model_dir.relative_to(directory).as_posix(),
            "outcome": asdict(run.outcome),
            "notes": run.regime.notes,
            "phases": [record.row() for record in records],
        },
    )


def load(directory: Path, cell: Cell, system: str) -> tuple[RegimeRun, list[PhaseRecord]] | None:
    """A cell finished by an earlier attempt of this run, with the phases it was charged; None if it is not."""
    path = folder(directory, cell) / FINISHED
    if not path.exists():
        return None
    stored = read_json(path)
    model_dir = directory / stored["model_dir"]
    if stored["cell"] != cell.id or stored["system"] != system or not model_dir.is_dir():
        return None
    outcome = dict(stored["outcome"])
    curve = [CurvePoint(**point) for point in outcome.pop("curve")]
    cell.regime.notes.update(stored["notes"])
    run = RegimeRun(
        cell=cell,
        system=system,
        budget=stored["budget"],
        outcome=TrainingOutcome(**outcome, curve=curve),
        model_dir=model_dir,
    )
    return run, [PhaseRecord(**row) for row in stored["phases"]]
