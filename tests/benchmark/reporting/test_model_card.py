"""Model cards from a hand-made run: every field a reader needs, each taken from the run's own rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmark.reporting import model_card

BASE = "sentence-transformers/all-MiniLM-L6-v2"
TUNED = "teacher-distillation:learning_rate=1e-5|5e-5"
POINT = "teacher-distillation:learning_rate={} (tune point)"
SETS = ("beir/scifact/test", "vaswani")


def measures(ndcg: float, p: float, sign: str = "") -> dict:
    return {
        "nDCG@10": ndcg,
        "RR@10": ndcg - 0.05,
        "R@100": 0.9,
        "R@1000": 0.95,
        "nDCG@10 sig": sign,
        "nDCG@10 p": p,
        "RR@10 sig": "",
        "RR@10 p": 0.5,
        "R@100 sig": "",
        "R@100 p": math.nan,
        "R@1000 sig": "",
        "R@1000 p": math.nan,
    }


def trained(system: str, **fields) -> dict:
    return {
        "system": system,
        "kind": "regime",
        "regime": system,
        "data_fraction": 0.135,
        "seed": 42.0,
        "examples_budget": 444.0,
        "examples_consumed": 444.0,
        "steps": 14.0,
        "best_step": 12.0,
        "examples_at_best": 384.0,
        "best_validation_ndcg10": 0.71234,
        "status": "ok",
        "selection": "best validated checkpoint (step 12)",
        "charged_wall_s": 119.84,
        "charged_cpu_s": 230.5,
        "charged_gpu_hours": 0.0,
        "charged_energy_kwh": 0.004321,
        "charged_co2_kg": 0.001654,
        "energy_mode": "estimated",
        "charged_phases": "validate+train",
        **fields,
    }


def results_frame() -> pd.DataFrame:
    rows = []
    for index, eval_set in enumerate(SETS):
        common = {"run_id": "hand", "eval_set": eval_set, "queries": 300 - 200 * index}
        rows.append({**common, "system": "initial", "kind": "initial", **measures(0.6457 - index / 10, math.nan)})
        sign = "+" if index == 0 else ""
        self_distillation = trained(
            "self-distillation",
            regime_name="self-distillation",
            parameters="target=adaptive;in_batch=True;error=l2",
        )
        rows.append({**common, **self_distillation, **measures(0.6721 - index / 10, 0.0123 + index / 2, sign)})
        tuned = trained(
            TUNED,
            regime_name="teacher-distillation",
            parameters="teacher=bm25;in_batch_weight=0.0",
            tune_grid="learning_rate=1e-5|5e-5",
            tune_points=2.0,
            tune_selected="learning_rate=5e-5",
            tune_selected_cell=f"{POINT.format('5e-5')}|f=0.135|seed=42",
            tune_wall_s=250.5,
            tune_energy_kwh=0.009,
        )
        rows.append({**common, **tuned, **measures(0.6601 - index / 10, 0.03 if index else 0.2, "-" if index else "")})
    return pd.DataFrame(rows)


def write_cell(run: Path, label: str, system: str, folder: str, phases: list[dict]) -> None:
    (run / folder).mkdir(parents=True)
    (run / folder / "1_Pooling").mkdir()
    (run / folder / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 384}))
    (run / folder / "README.md").write_text("the card sentence-transformers wrote when saving")
    cell = f"{label}|f=0.135|seed=42"
    stored = {
        "cell": cell,
        "system": system,
        "regime": label,
        "settings": {"teacher": "bm25", "in_batch_weight": 0.0},
        "data_fraction": 0.135,
        "seed": 42,
        "budget": 444,
        "model_dir": folder,
        "outcome": {
            "examples_consumed": 444,
            "steps": 14,
            "best_step": 7,
            "best_examples": 224,
            "best_validation": 0.7001,
            "stopped_early": True,
            "status": "ok",
            "selection": "best validated checkpoint (step 7)",
        },
        "notes": {"teacher": "bm25"},
        "phases": [{"cell": cell, "charged_to": label, **phase} for phase in phases],
    }
    path = run / "cells" / folder.replace("/", "_") / "cell.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(stored))


def manifest(model: str = BASE, energy: str = "codecarbon estimated (process tracking, country USA)") -> dict:
    return {
        "run_id": "hand",
        "command": ["python", "-m", "benchmark", "run", "--regimes", "self-distillation"],
        "config": {
            "out": "results",
            "country": "USA",
            "encoder": {
                "model": model,
                "pooling": "auto",
                "similarity": "cosine",
                "max_query_length": 64,
                "max_doc_length": 256,
                "precision": "auto",
                "attention_dropout": 0.0,
                "dropout": None,
            },
            "data": {"dataset": "beir/scifact"},
            "training": {"batch_size": 32, "learning_rate": 2e-5, "epochs": 1, "schedule": "linear"},
        },
        "seeds": [42],
        "device": "cuda",
        "accelerators_in_use": 1,
        "precision": "bf16",
        "energy": energy,
        "validation": "dense retrieval of 81 held-out queries over 900 documents",
        "data": {"training_triples": 3288, "pooling": "mean", "triples": {"source": "mined with BM25"}},
        "hardware": {"cpu": "AMD EPYC", "cpu_cores": 2, "gpus": ["NVIDIA H200"], "memory_gb": 128},
        "versions": {"python": "3.11.7", "sentence-transformers": "6.2.0"},
        "git_commit": "0123abc",
    }


@pytest.fixture
def run(tmp_path) -> Path:
    """A finished run's folder as cards see it: two regime models, the tuned system's selected point and an
    unselected point (not evaluated on the test sets), each with its cell.json."""
    run = tmp_path / "hand"
    write_cell(run, "self-distillation", "self-distillation", "models/self-distillation", [])
    for rate in ("1e-5", "5e-5"):
        phases = [
            {"phase": "teacher-scoring", "wall_s": 1.5, "cpu_s": 1.0, "gpu_hours": 0.0004, "energy_kwh": 0.001},
            {"phase": "train", "wall_s": 2.0, "cpu_s": 1.5, "gpu_hours": 0.0006, "energy_kwh": 0.002},
        ]
        for phase in phases:
            phase.update(co2_kg=phase["energy_kwh"] / 2, energy_mode="measured")
        name = POINT.format(rate)
        write_cell(run, name, name, f"models/{name.replace(' ', '_')}", phases)
    return run


def cards(run: Path, **overrides) -> dict[str, str]:
    written = model_card.write_model_cards(run, results_frame(), manifest(**overrides))
    return {path.parent.name: path.read_text() for path in written}


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_a_regime_card_has_every_field_from_the_rows(run):
    card = cards(run)["self-distillation"]
    frame = results_frame()
    mine = frame[frame["system"] == "self-distillation"]
    initial = frame[frame["system"] == "initial"]
    assert f"[{BASE}](https://huggingface.co/{BASE})" in card  # base model
    assert "**Regime:** self-distillation" in card and "`target=adaptive`, `in_batch=True`, `error=l2`" in card
    assert "**Data fraction:** 0.135 of the 3,288 training triples: a budget of 444" in card
    assert "**Examples consumed:** 444 in 14 steps (384 up to the selected checkpoint)" in card
    assert "**Wall-clock:** 119.8 s (validate, train)" in card
    assert "**Accelerator-hours:** 0.00000 (wall-clock x 1 accelerator(s) in use: NVIDIA H200)" in card
    assert "**Energy:** 0.004321 kWh (estimated by codecarbon" in card
    assert "**CO2:** 0.001654 kg CO2-eq (estimated energy" in card and "USA" in card
    for eval_set, queries in zip(SETS, (300, 100), strict=True):
        assert f"#### {eval_set} ({queries} queries)" in card
    first, second = (row for _, row in mine.iterrows())
    assert f"| nDCG@10 | {first['nDCG@10']:.4f} | {initial.iloc[0]['nDCG@10']:.4f} | **better** | 0.0123 |" in card
    assert f"| nDCG@10 | {second['nDCG@10']:.4f} | {initial.iloc[1]['nDCG@10']:.4f} | no significant" in card
    assert "```bibtex\n@inproceedings{gienapp2025adaptive" in card and "#### SelfDistillation" in card
    assert 'SentenceTransformer("results/hand/models/self-distillation")' in card
    assert 'pyterrier_dr.SBertBiEncoder("results/hand/models/self-distillation")' in card
    assert "huggingface-cli upload <your-name>/<model-name> results/hand/models/self-distillation ." in card
    assert "384-dimensional" in card and "- `pooling`: mean" in card  # the run's resolved pooling, not "auto"
    assert "the card sentence-transformers wrote" not in card  # replaced


def test_the_front_matter_is_hub_metadata_with_the_test_effectiveness(run):
    metadata = front_matter(cards(run)["self-distillation"])
    assert metadata["base_model"] == BASE
    assert metadata["library_name"] == "sentence-transformers" and "self-distillation" in metadata["tags"]
    [index] = metadata["model-index"]
    found = {(r["dataset"]["name"], m["name"]): m["value"] for r in index["results"] for m in r["metrics"]}
    frame = results_frame()
    for _, row in frame[frame["system"] == "self-distillation"].iterrows():
        assert found[(row["eval_set"], "nDCG@10")] == pytest.approx(row["nDCG@10"], abs=1e-6)
        assert found[(row["eval_set"], "R@100")] == pytest.approx(row["R@100"], abs=1e-6)


def test_the_tuned_system_describes_its_selected_points_folder(run):
    written = cards(run)
    selected = written[POINT.format("5e-5").replace(" ", "_")]
    assert selected.startswith("---") and f"# {TUNED}:" in selected
    assert "selected `learning_rate=5e-5`" in selected
    assert "- `learning_rate`: 5e-5 (this grid point's)" in selected  # not the run's 2e-05
    assert "**Whole search** (every grid point): 250.5 s" in selected
    assert "| nDCG@10 | 0.5601 |" in selected and "**worse**" in selected  # vaswani row, sign "-"
    assert "2010.02666" in selected and "#### TeacherDistillation" in selected


def test_an_unevaluated_tune_point_gets_a_card_from_its_cell(run):
    card = cards(run)[POINT.format("1e-5").replace(" ", "_")]
    assert "Not evaluated on the test sets" in card and "model-index" not in card
    assert "**Wall-clock:** 3.5 s (teacher-scoring, train)" in card  # its cell's charged phases, summed
    assert "**Accelerator-hours:** 0.00100" in card
    assert "**Energy:** 0.003000 kWh (measured by codecarbon" in card
    assert "- `learning_rate`: 1e-5 (this grid point's)" in card
    assert "best validation nDCG@10 0.7001 at step 7; stopped early" in card


def test_energy_not_measured_and_a_local_base_model(run):
    card = cards(run, model="/models/my-checkpoint", energy="not measured (--no-energy)")["self-distillation"]
    frame = results_frame()
    assert "**Energy:** 0.004321 kWh (estimated" in card  # the row's own measurement wins over the note
    assert "base_model" not in front_matter(card) and "https://huggingface.co//models" not in card
    assert "**Base model:** `/models/my-checkpoint`" in card
    frame.loc[:, ["charged_energy_kwh", "charged_co2_kg"]] = math.nan
    frame.loc[:, "energy_mode"] = "not measured"
    written = model_card.write_model_cards(run, frame, manifest(energy="not measured (--no-energy)"))
    card = next(p for p in written if p.parent.name == "self-distillation").read_text()
    assert "**Energy:** not measured (--no-energy)" in card and "**CO2:** not measured" in card
