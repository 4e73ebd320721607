"""README.md model cards for every saved model folder, in the layout of sentence-transformers' own cards.

A card says what the model is (base model, regime and its parameters), what it was trained on (data budget,
examples consumed), what training cost (wall-clock, accelerator-hours, energy and CO2, marked estimated where
codecarbon estimated them), how well it retrieves (each evaluation set, with the significance against the initial
encoder), whom to cite and how to load it. It needs the test effectiveness, so it is written from the results rows
after evaluation, at the end of a run and again by ``python -m benchmark report`` (which gives older runs cards).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.common.files import read_json, write_atomic
from benchmark.training.tuning import POINT_SUFFIX, TRAINING_FIELDS

CARD_FILE = "README.md"
TRAINED_KINDS = ("regime", "tune point")  # rows whose system is a model this run saved
COST_FIELDS = ("wall_s", "cpu_s", "gpu_hours", "energy_kwh", "co2_kg")
METRIC_TYPES = {"nDCG": "ndcg", "RR": "mrr", "R": "recall", "P": "precision", "AP": "map"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class CardSubject:
    """One saved model folder and what describes it: its cell's record (cell.json) and the system's results rows,
    one per evaluation set (none for a --tune point that was not evaluated on the test sets)."""

    folder: Path
    system: str
    cell: dict
    rows: list[dict] = field(default_factory=list)

    @property
    def facts(self) -> dict:
        """The results row's fields where there is a row, else what cell.json records under the same names."""
        facts = facts_from_cell(self.cell)
        if self.rows:
            facts.update({key: value for key, value in self.rows[0].items() if present(value)})
        return facts


# --- values as read back from results.csv (NaN, None and "" all mean absent) -------------------------------------
def present(value: Any) -> bool:
    if value is None or (isinstance(value, str) and not value.strip()):
        return False
    return not (isinstance(value, float) and math.isnan(value))


def number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def formatted(value: Any, digits: int) -> str:
    value = number(value)
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def whole(value: Any) -> str:
    value = number(value)
    return "n/a" if math.isnan(value) else f"{int(value):,}"


def integer(value: Any) -> str:
    """A count or index as typed (42, not 42.0: results.csv read back gives floats)."""
    value = number(value)
    return "n/a" if math.isnan(value) else str(int(value))


def records(results: pd.DataFrame) -> list[dict]:
    return results.astype(object).where(results.notna(), None).to_dict("records")


# --- which folder each card goes into ---------------------------------------------------------------------------
def finished_cells(run_dir: Path) -> dict[str, dict]:
    """Cell id -> cell.json, for every finished cell of the run (each names its saved model folder)."""
    found = {}
    for path in sorted((run_dir / "cells").glob("*/cell.json")):
        stored = read_json(path)
        found[stored["cell"]] = stored
    return found


def subjects(run_dir: Path, rows: Sequence[dict], cells: dict[str, dict]) -> Iterator[CardSubject]:
    """Every saved model folder once: the trained systems of the results (regimes and tuned systems before tune
    points, so a selected point's folder describes the tuned system), then cells without results rows."""
    by_system = {stored["system"]: stored for stored in cells.values()}
    trained = [row for row in rows if row.get("kind") in TRAINED_KINDS]
    trained.sort(key=lambda row: TRAINED_KINDS.index(row["kind"]))
    seen: set[Path] = set()
    for system in dict.fromkeys(row["system"] for row in trained):
        mine = [row for row in rows if row["system"] == system]
        selected = mine[0].get("tune_selected_cell")
        stored = cells.get(selected) if present(selected) else by_system.get(system)
        if stored is None:
            continue
        folder = run_dir / stored["model_dir"]
        if folder.is_dir() and folder not in seen:
            seen.add(folder)
            yield CardSubject(folder=folder, system=system, cell=stored, rows=mine)
    for stored in cells.values():
        folder = run_dir / stored["model_dir"]
        if folder.is_dir() and folder not in seen:
            seen.add(folder)
            yield CardSubject(folder=folder, system=stored["system"], cell=stored)


def facts_from_cell(stored: dict) -> dict:
    """cell.json under results.csv's names, the costs summed over the phases charged to the cell."""
    outcome = stored.get("outcome", {})
    label = stored.get("regime", "")
    facts = {
        "regime": label,
        "regime_name": re.split(r"[: ]", label, maxsplit=1)[0],
        "parameters": ";".join(f"{key}={value}" for key, value in stored.get("settings", {}).items()),
        "data_fraction": stored.get("data_fraction"),
        "seed": stored.get("seed"),
        "examples_budget": stored.get("budget"),
        "examples_consumed": outcome.get("examples_consumed"),
        "steps": outcome.get("steps"),
        "best_step": outcome.get("best_step"),
        "examples_at_best": outcome.get("best_examples"),
        "best_validation_ndcg10": outcome.get("best_validation"),
        "stopped_early": outcome.get("stopped_early"),
        "status": outcome.get("status"),
        "selection": outcome.get("selection"),
        **stored.get("notes", {}),
    }
    charged = [p for p in stored.get("phases", []) if p.get("charged_to") and p.get("cell") == stored.get("cell")]
    for name in COST_FIELDS:
        values = [number(p.get(name)) for p in charged]
        facts[f"charged_{name}"] = sum(v for v in values if not math.isnan(v)) if charged else None
    if charged and all(math.isnan(number(p.get("energy_kwh"))) for p in charged):
        facts["charged_energy_kwh"] = facts["charged_co2_kg"] = None
    modes = {p.get("energy_mode") for p in charged}
    facts["energy_mode"] = "estimated" if "estimated" in modes else (modes.pop() if len(modes) == 1 else "")
    facts["charged_phases"] = "+".join(dict.fromkeys(p["phase"] for p in charged))
    return {key: value for key, value in facts.items() if present(value)}


# --- the card ---------------------------------------------------------------------------------------------------
def measures(rows: Sequence[dict]) -> list[str]:
    """The effectiveness measures of the results: the columns with a significance column beside them."""
    columns = dict.fromkeys(key for row in rows for key in row)
    return [name for name in columns if f"{name} sig" in columns]


def metric_type(measure: str) -> str:
    """nDCG@10 -> ndcg_at_10, R@100 -> recall_at_100: the model-index metric names of the Hugging Face hub."""
    name, _, cutoff = measure.partition("@")
    base = METRIC_TYPES.get(name, name.lower())
    return f"{base}_at_{cutoff}" if cutoff else base


def hub_id(model: str) -> str | None:
    """The base model's Hugging Face id, or None for a local folder (no link, no ``base_model`` metadata)."""
    return model if HUB_ID.match(model) and not Path(model).exists() else None


def training_overrides(facts: dict) -> dict[str, str]:
    """The training settings a --tune point or tuned system changed: its label's fixed settings and its selected
    grid point's (results.csv's ``tune_selected``), keeping the training loop's keys only."""
    label = str(facts.get("regime", "")).removesuffix(POINT_SUFFIX)
    settings = label.partition(":")[2]
    found = dict(item.partition("=")[::2] for item in settings.split(",") if "=" in item and "|" not in item)
    selected = str(facts.get("tune_selected", ""))
    found.update(item.partition("=")[::2] for item in selected.split(",") if "=" in item)
    return {key: value for key, value in found.items() if key in TRAINING_FIELDS}


def metadata(subject: CardSubject, manifest: dict, metrics: Sequence[str]) -> str:
    """The YAML front matter: sentence-transformers' tags and a model-index with the test effectiveness."""
    from huggingface_hub import EvalResult, ModelCardData

    facts = subject.facts
    results = [
        EvalResult(
            task_type="information-retrieval",
            task_name="Information Retrieval",
            dataset_type=str(row["eval_set"]),
            dataset_name=str(row["eval_set"]),
            metric_type=metric_type(measure),
            metric_name=measure,
            metric_value=round(number(row[measure]), 6),
        )
        for row in subject.rows
        for measure in metrics
        if not math.isnan(number(row.get(measure)))
    ]
    data = ModelCardData(
        base_model=hub_id(manifest["config"]["encoder"]["model"]),
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        tags=[
            "sentence-transformers",
            "sentence-similarity",
            "feature-extraction",
            "dense-retrieval",
            "dense-regime-benchmark",
            str(facts.get("regime_name", "")),
        ],
        model_name=subject.system,
        eval_results=results or None,
    )
    return data.to_yaml()


def output_dimension(folder: Path) -> str:
    for path, keys in (
        (folder / "1_Pooling" / "config.json", ("embedding_dimension", "word_embedding_dimension")),
        (folder / "config.json", ("hidden_size",)),
    ):
        if path.exists():
            stored = json.loads(path.read_text())
            for key in keys:
                if key in stored:
                    return str(stored[key])
    return "unknown"


def modules(folder: Path) -> list[str]:
    path = folder / "modules.json"
    return [module["type"].rsplit(".", 1)[-1] for module in json.loads(path.read_text())] if path.exists() else []


def load_path(subject: CardSubject, manifest: dict) -> str:
    """The folder as the run's ``--out`` names it (e.g. results/<run-id>/models/<system>)."""
    out = Path(str(manifest["config"].get("out", "results")))
    return (out / manifest["run_id"] / subject.cell["model_dir"]).as_posix()


def effectiveness(subject: CardSubject, rows: Sequence[dict], metrics: Sequence[str]) -> list[str]:
    if not subject.rows:
        return [
            "Not evaluated on the test sets: a --tune grid point is selected on validation only (`--evaluate-all` "
            "also evaluates every point). See the validation figures under Training Details.",
        ]
    lines = [
        "Retrieval over each evaluation set's whole corpus with pyterrier-dr (a FlexIndex of this model's embeddings), "
        "scored by `pt.Experiment`. *vs initial*: a paired t-test of this model against the initial encoder (the "
        "base model before training) over the queries, Holm-corrected over the run's systems, at p < 0.05: "
        "**better** or **worse** on average, else no significant difference.",
        "",
    ]
    for row in subject.rows:
        eval_set = row["eval_set"]
        initial = next((r for r in rows if r.get("kind") == "initial" and r["eval_set"] == eval_set), {})
        lines += [f"#### {eval_set} ({whole(row.get('queries'))} queries)", ""]
        lines += [
            "| measure | this model | initial encoder | vs initial | p (Holm) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for measure in metrics:
            sign = row.get(f"{measure} sig") or ""
            verdict = {"+": "**better**", "-": "**worse**"}.get(str(sign), "no significant difference")
            lines.append(
                f"| {measure} | {formatted(row.get(measure), 4)} | {formatted(initial.get(measure), 4)} | {verdict} "
                f"| {formatted(row.get(f'{measure} p'), 4)} |"
            )
        lines.append("")
    return lines


def energy_lines(facts: dict, manifest: dict) -> list[str]:
    """Energy and CO2, saying whether codecarbon measured or estimated them."""
    kwh, co2 = number(facts.get("charged_energy_kwh")), number(facts.get("charged_co2_kg"))
    country = manifest["config"].get("country", "")
    if math.isnan(kwh) or facts.get("energy_mode") in (None, "", "not measured"):
        why = str(manifest.get("energy") or "not measured")
        why = why if why.startswith("not measured") else f"not measured ({why})"
        return [f"- **Energy:** {why}", "- **CO2:** not measured"]
    if facts.get("energy_mode") == "estimated":
        how = (
            "estimated by codecarbon: this machine exposes no power counters, so power is estimated from the "
            "hardware (CPU TDP and load, memory)"
        )
        mode = "estimated"
    else:
        how, mode = "measured by codecarbon from the hardware's power counters (RAPL, NVML)", "measured"
    return [
        f"- **Energy:** {kwh:.6f} kWh ({how})",
        f"- **CO2:** {co2:.6f} kg CO2-eq ({mode} energy times codecarbon's carbon intensity for {country})",
    ]


def accelerator_line(facts: dict, manifest: dict) -> str:
    devices = manifest.get("accelerators_in_use") or 0
    hours = formatted(facts.get("charged_gpu_hours"), 5)
    if devices == 0:
        return f"- **Accelerator-hours:** {hours} (trained without an accelerator: {manifest.get('device', 'cpu')})"
    gpus = ", ".join(manifest.get("hardware", {}).get("gpus", [])) or "GPU"
    return f"- **Accelerator-hours:** {hours} (wall-clock x {devices} accelerator(s) in use: {gpus})"


def training_details(facts: dict, manifest: dict) -> list[str]:
    config = manifest["config"]
    encoder, data = config["encoder"], config["data"]
    notes = manifest.get("data", {})
    parameters = [item for item in str(facts.get("parameters", "")).split(";") if item]
    lines = ["### Training Regime", ""]
    lines.append(f"- **Regime:** {facts.get('regime_name', 'unknown')} (as typed: `{facts.get('regime', '')}`)")
    lines.append(f"- **Parameters:** {', '.join(f'`{p}`' for p in parameters) or 'none'}")
    if present(facts.get("tune_grid")):
        lines.append(
            f"- **Tuned on validation:** grid `{facts['tune_grid']}` ({whole(facts.get('tune_points'))} points); "
            f"selected `{facts.get('tune_selected', '')}` (cell `{facts.get('tune_selected_cell', '')}`)"
        )
    lines += ["", "### Data Budget", ""]
    triples = notes.get("triples", {}) if isinstance(notes.get("triples"), dict) else {}
    lines.append(f"- **Training dataset:** {data['dataset']} ({triples.get('source', 'training triples')})")
    total = notes.get("training_triples")  # the last seed's split: the same for every cell of a one-seed run
    one_split = isinstance(total, int) and len(manifest.get("seeds", [])) <= 1
    of_total = f" of the {total:,} training triples" if one_split else ""
    lines.append(
        f"- **Data fraction:** {facts.get('data_fraction', 'n/a')}{of_total}: a budget of "
        f"{whole(facts.get('examples_budget'))} (query, positive, negative) triples, seed {integer(facts.get('seed'))}"
    )
    lines.append(
        f"- **Examples consumed:** {whole(facts.get('examples_consumed'))} in {whole(facts.get('steps'))} steps "
        f"({whole(facts.get('examples_at_best'))} up to the selected checkpoint)"
    )
    lines.append(f"- **Validation:** {manifest.get('validation') or 'held-out training queries'}")
    lines.append(
        f"- **Selected weights:** {facts.get('selection', 'n/a')}; best validation nDCG@10 "
        f"{formatted(facts.get('best_validation_ndcg10'), 4)} at step {integer(facts.get('best_step'))}"
        + ("; stopped early" if str(facts.get("stopped_early")) == "True" else "")
    )
    lines += ["", "### Training Hyperparameters", ""]
    overrides = training_overrides(facts)
    for key, value in {**config["training"], **overrides}.items():
        lines.append(f"- `{key}`: {value}" + (" (this grid point's)" if key in overrides else ""))
    lines.append("- optimizer: AdamW, the same for every regime of the run")
    resolved = {"pooling": notes.get("pooling", encoder.get("pooling"))}  # "auto" resolved by the run
    for key in ("similarity", "pooling", "max_query_length", "max_doc_length", "attention_dropout", "dropout"):
        lines.append(f"- `{key}`: {resolved.get(key, encoder.get(key))}")
    lines.append(f"- precision: {manifest.get('precision', encoder.get('precision'))}")
    lines += ["", "### Training Costs", ""]
    lines.append(
        "Charged to this model: its regime's own preparation (e.g. teacher scoring, clustering), its training and its "
        "validations; shared data preparation, mining, indexing and evaluation are charged to no regime."
    )
    lines.append("")
    phases = str(facts.get("charged_phases", "")).replace("+", ", ")
    lines.append(f"- **Wall-clock:** {formatted(facts.get('charged_wall_s'), 1)} s ({phases or 'no phases'})")
    lines.append(f"- **CPU time:** {formatted(facts.get('charged_cpu_s'), 1)} s")
    lines.append(accelerator_line(facts, manifest))
    lines += energy_lines(facts, manifest)
    if present(facts.get("tune_wall_s")):
        lines.append(
            f"- **Whole search** (every grid point): {formatted(facts['tune_wall_s'], 1)} s wall-clock, "
            f"{formatted(facts.get('tune_energy_kwh'), 6)} kWh"
        )
    hardware = manifest.get("hardware", {})
    lines += ["", "### Training Hardware", ""]
    lines.append(f"- **Device:** {manifest.get('device', 'n/a')}")
    lines.append(f"- **CPU:** {hardware.get('cpu', 'n/a')} ({hardware.get('cpu_cores', 'n/a')} cores)")
    lines.append(f"- **GPUs:** {', '.join(hardware.get('gpus', [])) or 'none'}")
    lines.append(f"- **Memory:** {hardware.get('memory_gb', 'n/a')} GB")
    return lines


def citation(regime_name: str) -> tuple[str, str]:
    """The regime class's name and its BibTeX (its ``citation`` attribute), as sentence-transformers cites losses."""
    from regimes import REGISTRY

    regime = REGISTRY.get(regime_name)
    return (regime.__name__, regime.citation) if regime is not None else (regime_name, "")


def render(subject: CardSubject, rows: Sequence[dict], manifest: dict) -> str:
    facts = subject.facts
    config = manifest["config"]
    model = config["encoder"]["model"]
    base = f"[{model}](https://huggingface.co/{model})" if hub_id(model) else f"`{model}`"
    metrics = measures(rows)
    path = load_path(subject, manifest)
    regime_name = str(facts.get("regime_name", ""))
    class_name, bibtex = citation(regime_name)
    versions = manifest.get("versions", {})
    lines = [
        "---",
        metadata(subject, manifest, metrics),
        "---",
        "",
        f"# {subject.system}: {model} trained with {regime_name}",
        "",
        f"This is a [sentence-transformers](https://www.SBERT.net) model finetuned from {base} with the "
        f"**{regime_name}** training regime of dense-regime-benchmark (run `{manifest['run_id']}`), on a data "
        f"fraction of {facts.get('data_fraction', 'n/a')} of {config['data']['dataset']}. It maps queries and "
        f"documents to a {output_dimension(subject.folder)}-dimensional dense vector space for dense retrieval.",
        "",
        "## Model Details",
        "",
        "### Model Description",
        "",
        "- **Model Type:** Sentence Transformer (bi-encoder)",
        f"- **Base model:** {base}",
        f"- **Regime:** {regime_name} (`{facts.get('regime', '')}`)",
        f"- **Maximum Sequence Length:** {config['encoder']['max_doc_length']} tokens (queries: "
        f"{config['encoder']['max_query_length']})",
        f"- **Output Dimensionality:** {output_dimension(subject.folder)} dimensions",
        f"- **Similarity Function:** {config['encoder']['similarity']}",
        f"- **Modules:** {' -> '.join(modules(subject.folder)) or 'unknown'}",
        f"- **Training Dataset:** {config['data']['dataset']}",
        f"- **Status:** {facts.get('status', 'n/a')}",
        f"- **Produced by:** dense-regime-benchmark, commit {manifest.get('git_commit', 'unknown')}, command "
        f"`{' '.join(manifest.get('command', []))}`",
        "",
        "## Usage",
        "",
        "### Direct Usage (Sentence Transformers)",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        f'model = SentenceTransformer("{path}")  # or its Hub id once uploaded',
        'queries = model.encode(["does smoking cause lung cancer"])',
        'documents = model.encode(["Smoking tobacco causes lung cancer and chronic obstructive disease."])',
        "print(model.similarity(queries, documents))",
        "```",
        "",
        "### Dense Retrieval (PyTerrier, pyterrier-dr)",
        "",
        "```python",
        "import pyterrier_dr",
        "",
        f'encoder = pyterrier_dr.SBertBiEncoder("{path}")',
        'index = pyterrier_dr.FlexIndex("corpus.flex")',
        '(encoder >> index.indexer()).index([{"docno": "d1", "text": "Smoking tobacco causes lung cancer."}])',
        'print((encoder >> index.retriever()).search("does smoking cause lung cancer"))',
        "```",
        "",
        "### Publishing",
        "",
        "```bash",
        f"huggingface-cli upload <your-name>/<model-name> {path} .  # `hf upload` in huggingface_hub >= 1.0",
        "```",
        "",
        "## Evaluation",
        "",
        "### Metrics",
        "",
        *effectiveness(subject, rows, metrics),
        "## Training Details",
        "",
        *training_details(facts, manifest),
        "",
        "### Framework Versions",
        "",
        *[f"- {name}: {version}" for name, version in versions.items()],
        "",
        "## Citation",
        "",
        "### BibTeX",
        "",
        f"#### {class_name}",
        "",
        *(["```bibtex", bibtex.strip(), "```"] if bibtex else ["No citation is recorded for this regime."]),
        "",
    ]
    return "\n".join(lines)


def write_model_cards(run_dir: Path, results: pd.DataFrame, manifest: dict) -> list[Path]:
    """Write (or replace) README.md in every saved model folder of a finished run; returns the cards written."""
    rows = records(results)
    written = []
    for subject in subjects(run_dir, rows, finished_cells(run_dir)):
        path = subject.folder / CARD_FILE
        write_atomic(path, render(subject, rows, manifest))
        written.append(path)
    return written


def write_for_run(run_dir: Path) -> list[Path]:
    """The cards of a run from its saved files alone (results.csv, manifest.json, cells/*/cell.json)."""
    results = pd.read_csv(run_dir / "results.csv", dtype={"system": str, "eval_set": str})
    return write_model_cards(run_dir, results, read_json(run_dir / "manifest.json"))
