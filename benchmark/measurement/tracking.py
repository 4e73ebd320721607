"""Experiment tracking (``--log-with``) through accelerate's trackers: TensorBoard, Weights & Biases, MLflow.

Off by default. When on, the main process logs per training step the loss, learning rate and examples seen, per
validation nDCG@10 (the initial weights at step 0 included), per phase its costs as it ends, and the run's config
as hyper-parameters. Every series is named ``<cell>/<group>/<value>`` (``shared`` for work charged to no cell), so
the cells of one run never share a series. TensorBoard writes under ``<run folder>/tracking/tensorboard/`` and
makes no network call; wandb and mlflow go where their own settings send them (``WANDB_MODE=offline``,
``MLFLOW_TRACKING_URI``). Nothing here imports a tracker until one is asked for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.common.errors import UsageError

if TYPE_CHECKING:
    from accelerate.tracking import GeneralTracker

    from benchmark.measurement.phases import PhaseRecord

FOLDER = "tracking"  # under the run folder
PROJECT = "dense-regime-benchmark"  # the wandb project and the MLflow experiment
SHARED = "shared"  # the namespace of phases charged to no cell

# tracker -> the packages any one of which provides it (as accelerate's is_<tracker>_available checks), and its fix
PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboard", "tensorboardX"), "pip install tensorboard (or pip install -e '.[tracking]')"),
    "wandb": (("wandb",), "pip install wandb"),
    "mlflow": (("mlflow",), "pip install mlflow"),
}
TRACKERS = tuple(PACKAGES)

Metrics = Callable[[dict[str, float], int], None]  # (values named <group>/<value>, step) -> logged


def installed(tracker: str) -> bool:
    """Whether the tracker's package can be imported, without importing it."""
    return any(importlib.util.find_spec(package) is not None for package in PACKAGES[tracker][0])


def check_installed(trackers: Sequence[str]) -> None:
    """A tracker asked for but not installed is refused before any work, naming the pip command."""
    for tracker in trackers:
        if tracker not in PACKAGES:
            raise UsageError(f"--log-with {tracker!r} is not a tracker; choose from {', '.join(TRACKERS)}")
        if not installed(tracker):
            raise UsageError(f"--log-with {tracker} needs its package, which is not installed: {PACKAGES[tracker][1]}")


def hyperparameters(config: Any) -> dict[str, bool | int | float | str | None]:
    """A run config as flat ``section.name`` -> scalar, the only values trackers accept as hyper-parameters; a
    sequence becomes its JSON text."""
    flat: dict[str, bool | int | float | str | None] = {}

    def add(prefix: str, value: Any) -> None:
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        if isinstance(value, dict):
            for key, item in value.items():
                add(f"{prefix}{key}.", item)
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[prefix.rstrip(".")] = value
        elif isinstance(value, (list, tuple)):
            flat[prefix.rstrip(".")] = json.dumps(value, default=str)
        else:
            flat[prefix.rstrip(".")] = str(value)

    add("", config)
    return flat


def clean(text: str) -> str:
    """Characters every tracker accepts in a series name (TensorBoard would rewrite the others, MLflow refuse)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


class Tracking:
    """The run's trackers; with none (tracking off) every method returns at once."""

    def __init__(self, trackers: Sequence[GeneralTracker] = ()) -> None:
        self.trackers = list(trackers)
        self._namespaces: dict[str, str] = {}  # cell id -> its namespace
        self._phase_counts: dict[str, int] = {}  # <namespace>/phase/<phase> -> times logged (its step)
        self._wandb_groups: set[str] = set()

    @property
    def on(self) -> bool:
        return bool(self.trackers)

    def namespace(self, cell: str) -> str:
        """A cell's series prefix: its id in clean characters, with a hash when another cell's id cleans the same."""
        if cell not in self._namespaces:
            name = clean(cell) if cell else SHARED
            if name in self._namespaces.values():
                name = f"{name}-{hashlib.sha1(cell.encode()).hexdigest()[:8]}"
            self._namespaces[cell] = name
        return self._namespaces[cell]

    def log(self, values: dict[str, float], step: int) -> None:
        """Values of one group (``<namespace>/<group>/<value>``) at a step of that group.

        wandb wants one increasing step for the whole run, while every cell counts its own steps from 1: there the
        step is logged as ``<group>/step`` and declared the x-axis of the group's series.
        """
        for tracker in self.trackers:
            if tracker.name == "wandb":
                group = next(iter(values)).rsplit("/", 1)[0]
                if group not in self._wandb_groups:
                    tracker.tracker.define_metric(f"{group}/*", step_metric=f"{group}/step")
                    self._wandb_groups.add(group)
                tracker.log({**values, f"{group}/step": step})
            else:
                tracker.log(values, step=step)

    def for_cell(self, cell: str) -> Metrics | None:
        """What training calls with a cell's step and validation values; None when tracking is off."""
        if not self.on:
            return None
        prefix = self.namespace(cell)

        def log(values: dict[str, float], step: int) -> None:
            self.log({f"{prefix}/{name}": value for name, value in values.items()}, step)

        return log

    def log_phase(self, record: PhaseRecord) -> None:
        """A phase's costs when it ends, at the step that counts its occurrences in its cell (``validate`` runs
        several times per cell)."""
        if not self.on:
            return
        group = f"{self.namespace(record.cell)}/phase/{clean(record.phase)}"
        step = self._phase_counts.get(group, 0) + 1
        self._phase_counts[group] = step
        costs = {
            "wall_s": record.wall_s,
            "cpu_s": record.cpu_s,
            "accelerator_hours": record.gpu_hours,
            "energy_kwh": record.energy_kwh,
            "co2_kg": record.co2_kg,
            "peak_rss_mb": record.peak_rss_mb,
            "peak_accelerator_mb": record.peak_gpu_mb,
            "count": record.count,
            "reused": int(record.reused),
        }
        self.log({f"{group}/{name}": float(value) for name, value in costs.items() if value is not None}, step)

    def close(self) -> None:
        """End every tracker (flushes TensorBoard's files, finishes wandb and MLflow runs); safe to call twice."""
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            tracker.finish()


OFF = Tracking()


def start(trackers: Sequence[str], directory: Path, run_id: str, config: Any) -> Tracking:
    """Start the named trackers for the run in ``directory`` with its config as hyper-parameters; OFF for none."""
    if not trackers:
        return OFF
    check_installed(trackers)
    from accelerate import PartialState
    from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker, filter_trackers

    # accelerate's trackers log through its logger, which needs its process state: on several processes the one
    # distributed.start made, else a one-process state (cpu=True: nothing initialises an accelerator for it)
    PartialState(cpu=True)
    folder = directory / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    made = {
        "tensorboard": lambda: TensorBoardTracker("tensorboard", folder),
        "wandb": lambda: WandBTracker(PROJECT, name=run_id, dir=str(folder)),
        "mlflow": lambda: MLflowTracker(experiment_name=PROJECT, run_name=run_id),
    }
    tracking = Tracking()
    try:
        values = hyperparameters(config)
        for logger_type in filter_trackers(list(dict.fromkeys(trackers)), folder):  # accelerate's own checks
            tracker = made[str(logger_type)]()
            tracker.start()
            tracking.trackers.append(tracker)
            tracker.store_init_configuration(values)
    except BaseException:
        tracking.close()
        raise
    return tracking
