"""Phases: nested blocks measured separately, counts kept, accelerator-hours and energy reported honestly."""

from __future__ import annotations

import math
import time

import pytest
import torch

from benchmark.measurement.phases import Meter

SLEEP_S = 0.2


def busy(seconds: float) -> None:
    """Spend CPU time (sleep spends none)."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_nested_phases_are_recorded_separately():
    """The inner phase gets its own row; the outer's wall-clock excludes the time spent inside the inner."""
    meter = Meter(torch.device("cpu"), energy=False)
    started = time.perf_counter()
    with meter.phase("train", "self-distillation", "cell-1") as outer:
        time.sleep(SLEEP_S / 4)
        with meter.phase("validate", "self-distillation", "cell-1") as inner:
            time.sleep(SLEEP_S)
            inner.count = 7
        time.sleep(SLEEP_S / 4)
        outer.count = 42
    total = time.perf_counter() - started
    assert [r.phase for r in meter.records] == ["validate", "train"]  # in order of completion
    validate, train = meter.records
    assert validate.count == 7 and train.count == 42
    assert validate.charged_to == train.charged_to == "self-distillation"
    assert validate.cell == train.cell == "cell-1"
    assert validate.wall_s >= SLEEP_S
    assert train.wall_s >= SLEEP_S / 2
    assert train.wall_s <= total - SLEEP_S  # the inner phase's sleep is not in the outer's time
    assert train.wall_s + validate.wall_s <= total


def test_cpu_time_is_measured():
    """Busy work shows up as CPU time, and sleeping does not."""
    meter = Meter(torch.device("cpu"), energy=False)
    with meter.phase("busy"):
        busy(0.1)
    with meter.phase("sleepy"):
        time.sleep(SLEEP_S)
    busy_record, sleepy_record = meter.records
    assert busy_record.cpu_s >= 0.1
    assert sleepy_record.cpu_s < sleepy_record.wall_s


def test_cpu_run_has_no_accelerator_hours_and_no_energy_when_off():
    """On CPU, accelerator-hours are 0; with energy off, nothing is claimed about energy."""
    meter = Meter(torch.device("cpu"), energy=False)
    with meter.phase("index") as record:
        time.sleep(0.01)
        record.count = 3
    (record,) = meter.records
    assert record.gpu_hours == 0.0
    assert record.energy_kwh is None and record.co2_kg is None
    assert record.energy_mode == "not measured"
    assert "not measured" in meter.energy_note
    assert record.peak_rss_mb > 0
    assert record.peak_gpu_mb == 0.0
    assert record.charged_to == "" and record.cell == ""
    assert record.row()["count"] == 3
    meter.close()


def test_accelerator_hours_are_wall_clock_times_accelerators():
    """A CUDA meter charges one accelerator for the phase's wall-clock (synchronisation is stubbed)."""
    meter = Meter(torch.device("cpu"), energy=False)
    meter.accelerators = 1  # as for a CUDA device; the CPU meter does not synchronise anything
    with meter.phase("train"):
        time.sleep(0.05)
    (record,) = meter.records
    assert record.gpu_hours == pytest.approx(record.wall_s / 3600)
    assert record.gpu_hours > 0


def test_exception_inside_a_phase_leaves_the_outer_measured_correctly():
    """A phase that raises must not corrupt the enclosing phase: its wall-clock stays within the elapsed time."""
    meter = Meter(torch.device("cpu"), energy=False)
    started = time.perf_counter()
    with meter.phase("outer"):
        time.sleep(SLEEP_S / 2)
        with pytest.raises(RuntimeError), meter.phase("inner"):
            time.sleep(SLEEP_S)
            raise RuntimeError("boom")
        time.sleep(SLEEP_S / 4)
    total = time.perf_counter() - started
    outer = next(r for r in meter.records if r.phase == "outer")
    assert outer.wall_s <= total
    assert outer.wall_s < total - SLEEP_S  # the inner's time is not the outer's


def test_each_phase_is_told_when_it_ends_or_is_replayed_and_listening_is_charged_to_none():
    """on_phase (experiment tracking) sees every record, complete, in order; the time it takes is in no phase."""
    told = []

    def listener(record) -> None:
        told.append((record.phase, record.count, record.wall_s > 0, record.reused))
        time.sleep(SLEEP_S)

    meter = Meter(torch.device("cpu"), energy=False, on_phase=listener)
    with meter.phase("train", "self-distillation", "cell-1") as outer:
        with meter.phase("validate", "self-distillation", "cell-1") as inner:
            inner.count = 7
        outer.count = 42
    meter.replay(meter.records[0].row(), phase="mine")
    assert told == [("validate", 7, True, False), ("train", 42, True, False), ("mine", 7, True, True)]
    assert meter.records[1].wall_s < SLEEP_S  # the listener slept SLEEP_S after validate, inside train's block


def test_energy_with_codecarbon_offline():
    """With codecarbon, every phase gets a positive energy and CO2, labelled estimated or measured."""
    meter = Meter(torch.device("cpu"), energy=True)
    try:
        assert meter.energy_mode in ("estimated", "measured")
        assert meter.energy_mode in meter.energy_note
        with meter.phase("train"):
            busy(0.3)
            with meter.phase("validate"):
                busy(0.2)
    finally:
        meter.close()
    for record in meter.records:
        assert isinstance(record.energy_kwh, float)
        assert record.energy_kwh > 0 and math.isfinite(record.energy_kwh)
        assert isinstance(record.co2_kg, float) and record.co2_kg > 0
        assert record.energy_mode == meter.energy_mode
