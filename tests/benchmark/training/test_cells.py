"""Finished cells on disk: what a resumed run loads instead of training, and how a cut-off cell is recognised."""

from __future__ import annotations

import math

from benchmark.measurement.phases import PhaseRecord
from benchmark.training import cells
from benchmark.training.cells import Cell, RegimeRun
from benchmark.training.loop import CurvePoint, TrainingOutcome
from regimes.self_distillation import SelfDistillation


def finished_run(directory, regime=None) -> tuple[RegimeRun, list[PhaseRecord]]:
    cell = Cell(regime=regime or SelfDistillation(), fraction=0.5, seed=3)
    model_dir = directory / "models" / "self-distillation"
    model_dir.mkdir(parents=True)
    (model_dir / "model.safetensors").write_bytes(b"weights")
    outcome = TrainingOutcome(
        examples_consumed=8,
        steps=4,
        best_step=2,
        best_examples=4,
        best_elapsed_s=0.1 + 0.2,  # not exactly representable: must come back bit for bit
        best_validation=0.7,
        status="ok",
        curve=[CurvePoint(0, 0, 0.0, 0.5), CurvePoint(2, 4, 0.30000000000000004, 0.7), CurvePoint(4, 8, 0.6, math.nan)],
    )
    cell.regime.notes["teacher"] = "bm25"
    records = [PhaseRecord("validate", "self-distillation", cell.id, wall_s=0.25), PhaseRecord("train", "x", cell.id)]
    return RegimeRun(cell, "self-distillation", 8, outcome, model_dir), records


def test_a_saved_cell_loads_back_exactly(tmp_path):
    """Outcome, curve (NaN included), phases, notes and model folder come back as they were saved."""
    run, records = finished_run(tmp_path)
    cells.start(tmp_path, run.cell)
    assert cells.was_cut_off(tmp_path, run.cell)
    cells.save(tmp_path, run, records)
    assert not cells.was_cut_off(tmp_path, run.cell) and cells.any_finished(tmp_path)

    fresh = Cell(regime=SelfDistillation(), fraction=0.5, seed=3)
    loaded, loaded_records = cells.load(tmp_path, fresh, "self-distillation")
    assert loaded.cell is fresh and loaded.model_dir == run.model_dir and loaded.budget == 8
    assert loaded.outcome.curve[:2] == run.outcome.curve[:2] and math.isnan(loaded.outcome.curve[2].ndcg_at_10)
    assert loaded.outcome.best_elapsed_s == run.outcome.best_elapsed_s
    assert (loaded.outcome.steps, loaded.outcome.best_step, loaded.outcome.status) == (4, 2, "ok")
    assert loaded_records == records
    assert fresh.regime.notes == {"teacher": "bm25"}


def test_a_cell_is_not_loaded_when_it_is_not_the_same_or_its_model_is_gone(tmp_path):
    run, records = finished_run(tmp_path)
    cells.save(tmp_path, run, records)
    assert cells.load(tmp_path, run.cell, "another system name") is None
    assert cells.load(tmp_path, Cell(SelfDistillation(), fraction=1.0, seed=3), "self-distillation") is None
    (run.model_dir / "model.safetensors").unlink()
    run.model_dir.rmdir()
    assert cells.load(tmp_path, run.cell, "self-distillation") is None


def test_starting_again_clears_what_a_cut_off_attempt_left(tmp_path):
    cell = Cell(SelfDistillation(), fraction=1.0, seed=1)
    leftover = cells.start(tmp_path, cell) / "checkpoints" / "step-2"
    leftover.mkdir(parents=True)
    assert cells.was_cut_off(tmp_path, cell)
    cells.start(tmp_path, cell)
    assert not leftover.exists() and cells.was_cut_off(tmp_path, cell)


class Labelled:
    """Only what a cell's folder name depends on: the regime's label."""

    def __init__(self, label: str) -> None:
        self.label = label


def test_cells_of_similar_labels_get_their_own_folders(tmp_path):
    """Labels that differ only in characters a folder name cannot hold must not share a folder."""
    a = Cell(Labelled("teacher-distillation:teacher=scores:a/b"), fraction=1.0, seed=1)
    b = Cell(Labelled("teacher-distillation:teacher=scores:a_b"), fraction=1.0, seed=1)
    assert cells.folder(tmp_path, a) != cells.folder(tmp_path, b)
    assert cells.folder(tmp_path, a).parent == tmp_path / "cells"


def test_a_model_is_moved_into_place_whole(tmp_path):
    """The selected model replaces what a cut-off attempt may have left, in one rename."""
    final = tmp_path / "models" / "m"
    final.mkdir(parents=True)
    (final / "stale").write_text("old")
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "model.safetensors").write_text("new")
    cells.place_model(staging, final)
    assert sorted(p.name for p in final.iterdir()) == ["model.safetensors"] and not staging.exists()
