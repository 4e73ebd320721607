"""Each plot writes a PNG from small hand-made frames, atomically (no temporary file is left behind)."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark.reporting import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png_alone(path, returned) -> None:
    assert returned == path
    data = path.read_bytes()
    assert len(data) > len(PNG_MAGIC)
    assert data.startswith(PNG_MAGIC)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left


@pytest.fixture
def curves() -> pd.DataFrame:
    rows = []
    for regime, fraction, scale in [("teacher-distillation", 1.0, 1.0), ("self-distillation", 0.135, 0.5)]:
        for step in (0, 10, 20, 5):  # unsorted: the plot sorts by step
            rows.append(
                {
                    "regime": regime,
                    "data_fraction": fraction,
                    "seed": 1,
                    "step": step,
                    "examples_seen": 32 * step,
                    "elapsed_s": scale * step,
                    "ndcg_at_10": 0.3 + 0.01 * step,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def results() -> pd.DataFrame:
    def row(kind, system, regime=None, fraction=None, seed=None, ndcg=0.5):
        return {
            "kind": kind,
            "system": system,
            "regime": regime,
            "data_fraction": fraction,
            "seed": seed,
            "eval_set": "beir/scifact/test",
            "nDCG@10": ndcg,
        }

    return pd.DataFrame(
        [
            row("initial", "initial", ndcg=0.40),
            row("bm25", "bm25", ndcg=0.66),
            row("teacher", "teacher:cross-encoder/ms-marco-MiniLM-L-6-v2 (a long name to be cut)", ndcg=0.69),
            row("regime", "teacher-distillation f=1.0 seed=1", "teacher-distillation", 1.0, 1, 0.70),
            row("regime", "teacher-distillation f=1.0 seed=2", "teacher-distillation", 1.0, 2, 0.72),
            row("regime", "self-distillation f=0.135 seed=1", "self-distillation", 0.135, 1, 0.68),
            row("regime", "self-distillation f=0.25 seed=1", "self-distillation", 0.25, 1, 0.69),
        ]
    )


@pytest.fixture
def phases() -> pd.DataFrame:
    # As claims_report reads phases.csv (keep_default_na=False): uncharged phases have an empty charged_to.
    teacher, student = "teacher-distillation", "self-distillation"
    rows = [
        ("", "", "prepare", 5.0),
        ("", "bm25", "index", 3.0),
        (teacher, f"{teacher}|f=1.0|seed=1", "score", 40.0),
        (teacher, f"{teacher}|f=1.0|seed=1", "train", 100.0),
        (student, f"{student}|f=0.135|seed=1", "train", 12.0),
        (student, f"{student}|f=0.135|seed=1", "validate", 2.0),
    ]
    return pd.DataFrame(rows, columns=["charged_to", "cell", "phase", "wall_s"])


def test_validation_over_time(curves, tmp_path):
    path = tmp_path / "validation-over-time.png"
    assert_png_alone(path, plots.validation_over_time(curves, path))


def test_effectiveness_over_fraction(results, tmp_path):
    path = tmp_path / "effectiveness-over-fraction.png"
    assert_png_alone(path, plots.effectiveness_over_fraction(results, path))


def test_cost_by_phase(phases, tmp_path):
    path = tmp_path / "cost-by-phase.png"
    assert_png_alone(path, plots.cost_by_phase(phases, path))


@pytest.mark.filterwarnings("ignore:No artists with labels found")
def test_cost_by_phase_with_nothing_charged(phases, tmp_path):
    """A run that charged nothing to any regime (missing charged_to counts as uncharged) still gets its picture."""
    nothing = phases.head(2).astype({"charged_to": object})
    nothing.loc[1, "charged_to"] = None
    path = tmp_path / "cost-by-phase.png"
    assert_png_alone(path, plots.cost_by_phase(nothing, path))


def test_a_plot_replaces_an_existing_file(curves, tmp_path):
    """Re-rendering a report overwrites the previous picture in place."""
    path = tmp_path / "validation-over-time.png"
    path.write_bytes(b"old")
    assert_png_alone(path, plots.validation_over_time(curves, path))
