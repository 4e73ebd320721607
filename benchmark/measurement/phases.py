"""Named, measured blocks of work ("phases"): wall-clock, CPU time, accelerator-hours, energy, CO2, memory.

One offline codecarbon tracker per run, one codecarbon task per phase (cheap to start and stop, so nested phases
such as validation inside training are measured separately: the outer phase is paused while the inner runs).
The device is synchronised at every phase boundary, so asynchronous GPU work is charged to the phase that
launched it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import psutil
import torch

MEASURED_CPU_MODES = {"intel_rapl", "intel_power_gadget", "apple_powermetrics", "powermetrics"}


@dataclass
class PhaseRecord:
    """One row of phases.csv."""

    phase: str
    charged_to: str  # a regime label, or "" for shared work charged to no regime
    cell: str = ""  # regime x fraction x seed the phase belongs to ("" when shared)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    gpu_hours: float = 0.0
    energy_kwh: float | None = None
    co2_kg: float | None = None
    energy_mode: str = "not measured"
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float = 0.0
    count: int = 0  # items processed: triples, documents, queries
    reused: bool = False  # the result came from a cache; costs are those of the original computation
    aggregates: str = ""  # a phase summing others (``tune``: its points' cells): never add it to them

    def row(self) -> dict:
        return asdict(self)


class _PeakMemory:
    """Samples this process's resident memory in a thread: ru_maxrss cannot be reset between phases."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> _PeakMemory:
        self.peak = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class _Open:
    record: PhaseRecord
    started_wall: float = 0.0
    started_cpu: float = 0.0
    memory: _PeakMemory | None = None
    energy_kwh: float = 0.0
    co2_kg: float = 0.0
    energy_measured: bool = field(default=False)


class Meter:
    """Measures phases; ``records`` holds one PhaseRecord per completed phase, in order. ``on_phase`` is told of
    each record as it is completed or replayed (experiment tracking), outside every phase's clocks."""

    def __init__(
        self,
        device: torch.device,
        country: str = "DEU",
        energy: bool = True,
        devices: int = 1,
        on_phase: Callable[[PhaseRecord], None] | None = None,
    ) -> None:
        self.device = device
        self.on_phase = on_phase
        self.accelerators = devices if device.type == "cuda" else 0  # accelerator-hours = wall-clock x devices
        self.records: list[PhaseRecord] = []
        self._stack: list[_Open] = []
        self._tracker = None
        self.energy_note = "not measured (--no-energy)"
        if energy:
            self._tracker = self._start_tracker(country)

    def _start_tracker(self, country: str):
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        from codecarbon import OfflineEmissionsTracker

        tracker = OfflineEmissionsTracker(
            country_iso_code=country,
            save_to_file=False,
            log_level="error",
            tracking_mode="process",
            allow_multiple_runs=True,
        )
        tracker.start()
        self.energy_mode = self._mode(tracker)
        self.energy_note = f"codecarbon {self.energy_mode} (process tracking, country {country})"
        return tracker

    @staticmethod
    def _mode(tracker) -> str:
        """'measured' only when codecarbon reads power counters (RAPL, NVML...); otherwise 'estimated'."""
        modes = {type(h).__name__: getattr(h, "_mode", None) for h in getattr(tracker, "_hardware", [])}
        cpu_mode = modes.get("CPU")
        return "measured" if cpu_mode in MEASURED_CPU_MODES else "estimated"

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # --- pausing and resuming ------------------------------------------------------------------------
    def _resume(self, current: _Open) -> None:
        current.started_wall = time.perf_counter()
        current.started_cpu = time.process_time()
        if self._tracker is not None:
            self._tracker.start_task(current.record.phase)

    def _pause(self, current: _Open) -> None:
        self.synchronize()
        current.record.wall_s += time.perf_counter() - current.started_wall
        current.record.cpu_s += time.process_time() - current.started_cpu
        if self._tracker is not None:
            data = self._tracker.stop_task()
            if data is not None:
                current.energy_kwh += float(data.energy_consumed or 0.0)
                current.co2_kg += float(data.emissions or 0.0)
                current.energy_measured = True

    @contextlib.contextmanager
    def phase(self, name: str, charged_to: str = "", cell: str = "") -> Iterator[PhaseRecord]:
        """Measure a block; set ``record.count`` inside it to say how many items it processed."""
        if self._stack:
            self._pause(self._stack[-1])
        opened = _Open(PhaseRecord(phase=name, charged_to=charged_to, cell=cell))
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.synchronize()
        try:
            with _PeakMemory() as memory:
                opened.memory = memory
                self._stack.append(opened)
                self._resume(opened)
                try:
                    yield opened.record
                finally:
                    self._pause(opened)
                    self._stack.pop()
        finally:
            self._finish(opened, memory)

    def _finish(self, opened: _Open, memory: _PeakMemory) -> None:
        """Complete the record and restart the enclosing phase's clocks (also when the block raised)."""
        record = opened.record
        record.peak_rss_mb = memory.peak / 2**20
        if self.device.type == "cuda":
            record.peak_gpu_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        record.gpu_hours = record.wall_s * self.accelerators / 3600
        if opened.energy_measured:
            record.energy_kwh = opened.energy_kwh
            record.co2_kg = opened.co2_kg
            record.energy_mode = self.energy_mode
        self.records.append(record)
        if self.on_phase is not None:  # before the enclosing phase's clocks restart: tracking is charged to none
            self.on_phase(record)
        if self._stack:
            self._resume(self._stack[-1])

    def replay(self, original: dict, **overrides) -> PhaseRecord:
        """Record a phase whose result came from a cache: the costs measured when it was first computed,
        marked as reused, with ``overrides`` (e.g. the regime and cell now charged)."""
        record = PhaseRecord(**{**original, **overrides, "reused": True})
        self.records.append(record)
        if self.on_phase is not None:
            self.on_phase(record)
        return record

    def close(self) -> None:
        if self._tracker is not None:
            with contextlib.suppress(Exception):
                self._tracker.stop()
            self._tracker = None
