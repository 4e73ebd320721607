"""``python -m benchmark evaluate``: a finished run's encoders, or any model, on more evaluation sets, without
training.

A run (``results/<run-id>``) is evaluated as the run itself evaluates, by ``evaluate_run.evaluate_collection`` with the
run's own encoder settings: bm25, the initial encoder, the teachers and every trained encoder indexed with
pyterrier-dr, compared in one pt.Experiment (paired t-tests against the initial encoder, Holm-corrected), TREC run
files under runs/<set>/. A new row copies its system's columns that do not depend on the evaluation set (budget,
validation, charged costs, speedups) from that system's rows on the run's own sets, so the claims are judged on the
new sets exactly as on the run's. phases.csv gains the evaluation's phases (shared, charged to no regime),
leakage.json the new sets, manifest.json an ``evaluations`` entry per set (which set, when, which commit, the
command), and report.md and verdicts.csv are rendered again.

A model (a sentence-transformers or Hugging Face folder or id) gets a new evaluation folder of the same layout that
compares bm25, the initial encoder (``--baseline``, the reference of the significance tests) and the model; it can
be given more sets the same way, and ``report`` renders it.

The arguments, the folder and the evaluation sets are checked first, with this module's light imports only; torch,
transformers and pyterrier-dr (seconds) are imported by the functions that need them, after those checks. Every
model and teacher is loaded before any encoding. Nothing in the folder changes until every set is evaluated; then
the run files are moved in and results.csv, phases.csv, leakage.json and manifest.json are each written atomically.
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.common.errors import UsageError
from benchmark.common.files import publish, read_csv, read_json, safe_name, write_csv, write_json
from benchmark.data.collections import Collection, evaluation_collection, is_folder, require_judged, training_collection

if TYPE_CHECKING:
    import pandas as pd

    from benchmark.encoder import BiEncoder
    from benchmark.measurement.phases import Meter, PhaseRecord
    from benchmark.run.config import RunConfig
    from regimes import Regime

TRAINED_KINDS = ("regime", "tune point")  # their status is their training outcome, the same on every set
MODEL_KIND = "model"
EVALUATED_AT = "evaluated_at"  # results.csv: when `evaluate` wrote the row; empty in the rows the run wrote
RESERVED = ("bm25", "initial")  # systems.BM25 and systems.INITIAL: rows every evaluation has
# a run is evaluated in place, against its own initial encoder, with its own encoder settings
MODEL_ONLY_OPTIONS = ("baseline", "pooling", "similarity", "max_query_length", "max_doc_length", "out", "run_id")
NOT_TRAINED = "none (an evaluation folder: nothing trained)"


@dataclass
class SavedSystem:
    """An encoder to evaluate, as ``evaluate_run.evaluate_collection`` reads a trained one: its row name, its weights
    and the regime whose extra systems (its teacher) it brings; no regime for a model given to ``evaluate``."""

    system: str
    model_dir: str
    regime: Regime | None = None
    given: bool = False  # a model given to `evaluate` (a folder or id), not saved by a run


@dataclass
class Target:
    """A finished run or evaluation folder, or the new folder of a model: the state ``evaluate_collection`` reads,
    and the files the new rows join."""

    directory: Path
    config: RunConfig
    manifest: dict
    regime_runs: list[SavedSystem]
    tune_points: list[SavedSystem] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # results.csv as it is (strings)
    columns: list[str] = field(default_factory=list)
    templates: dict[str, dict] = field(default_factory=dict)  # system -> a row of it, for what no set changes
    training_dataset: str | None = None  # for leakage; None where nothing was trained
    created: bool = False  # a new evaluation folder, removed again if the evaluation fails


def evaluate(args: argparse.Namespace, argv: list[str]) -> int:
    """The command: check every input, evaluate every set, then write; returns the exit status."""
    from benchmark.common import network

    specs = list(dict.fromkeys(s.strip() for s in args.eval.split(",") if s.strip()))
    if not specs:
        raise UsageError("--eval names no evaluation set; give ids or BEIR folders, e.g. --eval vaswani")
    directory = Path(args.target)
    is_run = (directory / "manifest.json").is_file()
    if is_run:
        given = [f"--{name.replace('_', '-')}" for name in MODEL_ONLY_OPTIONS if getattr(args, name) is not None]
        if given:
            raise UsageError(
                f"{given[0]} is for a model; a run is evaluated in place, with its own initial encoder and settings"
            )
        existing = {row["eval_set"] for row in read_finished(directory)[1]}
    else:
        check_model_name(args.target)
        existing = set()
    network.fail_fast_offline()  # before ir_datasets or the hub could try to download
    collections = evaluation_sets(specs, existing, args.replace)
    from benchmark.encoder import BiEncoder
    from benchmark.run.run_folder import lock_folder

    lock = lock_folder(directory) if is_run else None  # no `run --resume` or `evaluate` at the same time
    try:
        target = open_run(directory, args) if is_run else new_folder(args, specs)
        initial = BiEncoder(target.config.encoder)
        check_systems(target)
        training = training_collection_for_leakage(target)
        if target.created:
            lock = lock_folder(target.directory)
        return evaluate_and_write(target, initial, collections, training, argv)
    finally:
        if lock is not None:
            lock.close()


# --- the inputs, checked with light imports -----------------------------------------------------------------------
def read_finished(directory: Path) -> tuple[dict, list[dict], list[str]]:
    """A finished run's (or evaluation folder's) manifest, results rows as written and results columns."""
    try:
        stored = read_json(directory / "manifest.json")
    except ValueError:
        raise UsageError(f"{directory / 'manifest.json'} is not readable JSON; this run cannot be evaluated") from None
    if stored.get("state") != "finished" or not (directory / "results.csv").is_file() or "config" not in stored:
        raise UsageError(
            f"{directory} is not a finished run (state {stored.get('state', 'unknown')!r}); finish it with "
            f"`python -m benchmark run --resume {directory.name}` first"
        )
    rows, columns = read_csv(directory / "results.csv")
    if not rows:
        raise UsageError(f"{directory / 'results.csv'} holds no rows; this run has nothing to evaluate")
    return stored, rows, columns


def check_model_name(model: str) -> None:
    """A model is named by a folder or a Hugging Face id; a path that is not there is neither."""
    if model in RESERVED:
        raise UsageError(f"a model named {model!r} would share its row with the system {model!r}; name it by its path")
    parent = Path(model).parent
    if not Path(model).exists() and (is_folder(model) or (parent.name and parent.is_dir())):
        raise UsageError(f"no run or model folder {model}; name results/<run-id>, a model folder or a Hugging Face id")


def evaluation_sets(specs: list[str], existing: set[str], replace_rows: bool) -> list[Collection]:
    """The sets to evaluate, each with judged queries, not already among ``existing`` unless ``--replace``, and with
    a run-file folder of its own."""
    collections = [evaluation_collection(spec) for spec in specs]
    names = [collection.name for collection in collections]
    for collection in collections:
        name = collection.name
        if names.count(name) > 1:
            raise UsageError(f"{name} is named twice in --eval; name it once")
        if name in existing and not replace_rows:
            raise UsageError(f"{name} is already in this run's results.csv; pass --replace to evaluate it again")
        sharing = sorted(other for other in (existing | set(names)) - {name} if safe_name(other) == safe_name(name))
        if sharing:
            raise UsageError(f"{name} and {sharing[0]} would share the run files folder runs/{safe_name(name)}")
        require_judged(collection)
    return collections


# --- what is evaluated --------------------------------------------------------------------------------------------
def open_run(directory: Path, args: argparse.Namespace) -> Target:
    """A finished run or evaluation folder, with its own settings (``--device``, ``--precision``,
    ``--max-eval-queries`` and ``--cache-dir`` may change where and how much it is evaluated)."""
    from benchmark.run.config import from_stored

    stored, rows, columns = read_finished(directory)
    config = from_stored(stored["config"])
    config = replace(
        config,
        encoder=replace(
            config.encoder,
            device=args.device or config.encoder.device,
            precision=args.precision or config.encoder.precision,
            inference_engine=args.inference_engine or config.encoder.inference_engine,
        ),
        data=replace(config.data, max_eval_queries=args.max_eval_queries or config.data.max_eval_queries),
        cache_dir=args.cache_dir or config.cache_dir,
        country=args.country or config.country,
        energy=config.energy and not args.no_energy,
    )
    regime_runs, tune_points = saved_systems(directory, stored, rows)
    templates: dict[str, dict] = {}
    for row in rows:
        templates.setdefault(row["system"], row)
    return Target(
        directory=directory,
        config=config,
        manifest=stored,
        regime_runs=regime_runs,
        tune_points=tune_points,
        rows=rows,
        columns=columns,
        templates=templates,
        training_dataset=None if stored.get("kind") == "evaluation" else config.data.dataset,
    )


def saved_systems(directory: Path, stored: dict, rows: list[dict]) -> tuple[list[SavedSystem], list[SavedSystem]]:
    """The run's encoders in its own order: its regimes and --tune systems from manifest.json (listed in the order
    of their rows on every set), the models of an evaluation folder, and the --evaluate-all points from their
    cells."""
    from benchmark.encoder import resolve_model

    first = [row for row in rows if row["eval_set"] == rows[0]["eval_set"]]
    trained = [row for row in first if row["kind"] == "regime"]
    entries = stored.get("regimes", [])
    if [row["regime"] for row in trained] != [entry["label"] for entry in entries]:
        raise UsageError(
            f"{directory}: results.csv and manifest.json name different trained systems; they are not of one run"
        )
    systems = [
        SavedSystem(row["system"], str(directory / entry["model_dir"]), stored_regime(entry))
        for row, entry in zip(trained, entries, strict=True)
    ]
    systems += [SavedSystem(m["system"], resolve_model(m["model"]), given=True) for m in stored.get("models", [])]
    cells = [read_json(path) for path in sorted((directory / "cells").glob("*/cell.json"))]
    point_dirs = {cell["system"]: str(directory / cell["model_dir"]) for cell in cells}
    points = []
    for row in (row for row in first if row["kind"] == "tune point"):
        if row["system"] not in point_dirs:
            raise UsageError(
                f"{directory}: no finished cell holds the model of {row['system']}; it cannot be evaluated"
            )
        points.append(SavedSystem(row["system"], point_dirs[row["system"]]))
    return systems, points


def stored_regime(entry: dict) -> Regime:
    """A regime as manifest.json stores it (name and typed settings): its teacher is a system of every set."""
    from regimes import REGISTRY

    if entry["name"] not in REGISTRY:
        raise UsageError(f"regime {entry['name']!r} of this run is not in this toolkit; evaluate with the one that ran")
    return REGISTRY[entry["name"]](**entry["settings"])


def new_folder(args: argparse.Namespace, specs: list[str]) -> Target:
    """A model given by folder or id: bm25, the initial encoder (``--baseline``) and the model, in a new folder
    ``<out>/<run-id>``."""
    from benchmark.encoder import DEFAULT_MODEL, BiEncoder, EncoderConfig, resolve_model
    from benchmark.run.config import DataConfig, RunConfig
    from benchmark.run.run_folder import holds_anything

    model = args.target
    out = args.out or Path("results")
    run_id = args.run_id or datetime.now(timezone.utc).strftime("eval-%Y%m%d-%H%M%S")
    directory = out / run_id
    if holds_anything(directory):
        raise UsageError(
            f"{directory} already holds results; choose another --run-id, or add sets to it with "
            f"`python -m benchmark evaluate {directory} --eval ...`"
        )
    given = {name: getattr(args, name) for name in ("pooling", "similarity", "max_query_length", "max_doc_length")}
    encoder = EncoderConfig(
        model=args.baseline or DEFAULT_MODEL,
        precision=args.precision or "auto",
        inference_engine=args.inference_engine or "auto",
        device=args.device or "auto",
        **{name: value for name, value in given.items() if value is not None},  # else run's defaults
    )
    try:
        BiEncoder(replace(encoder, model=model))
    except UsageError as error:
        raise UsageError(f"{model!r} is neither a finished run (results/<run-id>) nor a model: {error}") from None
    config = RunConfig(
        regimes=(),
        data=DataConfig(dataset=NOT_TRAINED, evaluation=tuple(specs), max_eval_queries=args.max_eval_queries),
        encoder=encoder,
        out=out,
        run_id=run_id,
        cache_dir=args.cache_dir or Path.home() / ".cache" / "dense-regime-benchmark",
        country=args.country or "USA",
        energy=not args.no_energy,
    )
    stored_model = str(Path(model).resolve()) if Path(model).exists() else model
    return Target(
        directory=directory,
        config=config,
        manifest={"models": [{"system": model, "model": stored_model}]},
        regime_runs=[SavedSystem(model, resolve_model(stored_model), given=True)],
        templates={model: {"kind": MODEL_KIND, "model": stored_model}},
        created=True,
    )


def check_systems(target: Target) -> None:
    """Every saved encoder is there and every teacher loads, before any encoding."""
    from benchmark.encoder import BiEncoder

    for saved in [*target.regime_runs, *target.tune_points]:
        if saved.given:
            if not target.created:  # a new folder's model was loaded when it was named
                BiEncoder(replace(target.config.encoder, model=saved.model_dir))
        elif not Path(saved.model_dir).is_dir():
            raise UsageError(
                f"{target.directory}: the model of {saved.system} is missing ({saved.model_dir}); it cannot be "
                "evaluated"
            )
        if saved.regime is not None:
            saved.regime.check(target.config.encoder)


def training_collection_for_leakage(target: Target) -> Collection | None:
    """The run's training split, to measure the new sets' leakage; None (said) when nothing was trained or it
    cannot be read any more (the sets are still evaluated; their verdicts then do not say whether in domain)."""
    from benchmark.common.progress import say

    if target.training_dataset is None:
        return None
    try:
        return training_collection(target.training_dataset)
    except UsageError as error:
        say(f"leakage of the new sets not measured: {error}")
        return None


# --- evaluating and writing ---------------------------------------------------------------------------------------
def evaluate_and_write(
    target: Target, initial: BiEncoder, collections: list[Collection], training: Collection | None, argv: list[str]
) -> int:
    from benchmark.common.progress import console, say
    from benchmark.evaluation.evaluate_run import evaluate_collection
    from benchmark.measurement.phases import Meter
    from benchmark.reporting import claims_report, manifest, model_card
    from benchmark.reporting import tables as report

    directory, config = target.directory, target.config
    work = directory / ".work"
    shutil.rmtree(work, ignore_errors=True)
    staged = replace(target, directory=work / "published")  # run files reach the folder once every set is done
    started = time.time()
    meter = Meter(initial.device, country=config.country, energy=config.energy)
    try:
        tables = [
            evaluate_collection(collection, initial, staged, config, meter, work / "sets") for collection in collections
        ]
        existing = {row["eval_set"] for row in target.rows}
        entries = [
            manifest.evaluation(
                collection.name,
                argv,
                started,
                {
                    "systems": len(table),
                    "queries": int(table["queries"].iloc[0]),
                    "replaced": collection.name in existing,
                    "device": str(initial.device),
                    "precision": initial.precision,
                    "inference_engine": initial.engine,
                },
            )
            for collection, table in zip(collections, tables, strict=True)
        ]
        rows = [row for table in tables for row in new_rows(table, target, entries[0]["when"])]
        publish(staged.directory / "runs", directory / "runs")
        write_results(target, rows, meter.records, leakage_of(training, collections, target), entries, meter)
    except BaseException:
        if target.created:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    finally:
        meter.close()
        shutil.rmtree(work, ignore_errors=True)
    console.print(report.effectiveness_table(rows))
    claims_report.render(directory, config.tolerance)
    if (directory / "models").is_dir():  # the cards gain the new sets' effectiveness
        model_card.write_for_run(directory)
    say(f"Added {len(rows)} rows on {', '.join(c.name for c in collections)} to {directory / 'results.csv'}")
    return 0


def new_rows(table: pd.DataFrame, target: Target, when: str) -> list[dict]:
    """One results row per system of ``evaluate_collection``'s table: what the evaluation set decides (measures,
    significance, an untrained system's status) from the table, every other column as in a row of the system on
    the run's own sets."""
    from benchmark.reporting import tables as report

    rows = []
    for _, row in table.iterrows():
        system = row["system"]
        template = target.templates.get(system, {"kind": report.kind(system, {}, {})})
        new = {
            "run_id": target.directory.name,
            "eval_set": row["eval_set"],
            "queries": row["queries"],
            "system": system,
            "kind": template["kind"],
            **report.effectiveness(row),
        }
        new.update({key: value for key, value in template.items() if key not in new})
        if new["kind"] not in TRAINED_KINDS:
            new["status"] = report.retrieval_status(row)
        new[EVALUATED_AT] = when
        rows.append(new)
    return rows


def leakage_of(training: Collection | None, collections: list[Collection], target: Target) -> dict[str, dict]:
    """leakage.json's numbers for the new sets, measured against the run's training data as the run measures its
    own (the training qrels' positives, else the dataset's docpairs)."""
    from benchmark.evaluation import leakage
    from benchmark.evaluation.systems import topics_and_qrels

    if training is None:
        return {}
    data = target.config.data
    triples = training.docpairs(data.max_train_triples) if training.has_docpairs() and not training.qrels else []
    evaluated = [(collection, *topics_and_qrels(collection, data.max_eval_queries)) for collection in collections]
    return leakage.measure(training, evaluated, leakage.training_positives(training, triples))


def write_results(
    target: Target,
    rows: list[dict],
    records: list[PhaseRecord],
    measured_leakage: dict[str, dict],
    entries: list[dict],
    meter: Meter,
) -> None:
    """Append the rows (replacing a set's earlier rows), the phases, the leakage and the provenance, each file
    written atomically; rows of other sets are written back exactly as they were."""
    from benchmark.evaluation import leakage
    from benchmark.measurement.phases import PhaseRecord
    from benchmark.reporting import manifest
    from benchmark.reporting.outputs import CURVE_COLUMNS

    directory = target.directory
    added = [entry["eval_set"] for entry in entries]
    kept = [row for row in target.rows if row["eval_set"] not in added]
    columns = list(dict.fromkeys([*target.columns, *(key for row in rows for key in row)]))
    write_csv(directory / "results.csv", [*kept, *rows], columns)
    phases_path = directory / "phases.csv"
    phases, phase_columns = read_csv(phases_path) if phases_path.exists() else ([], [])
    phase_columns = phase_columns or [f.name for f in fields(PhaseRecord)]
    write_csv(phases_path, [*phases, *(record.row() for record in records)], phase_columns)
    if measured_leakage:
        path = directory / leakage.FILE
        write_json(path, {**(read_json(path) if path.exists() else {}), **measured_leakage})
    if target.created:
        write_csv(directory / "curves.csv", [], CURVE_COLUMNS)
        notes = {"device": entries[0]["device"], "precision": entries[0]["precision"], "energy": meter.energy_note}
        stored = manifest.evaluation_folder(target.config, directory, target.manifest["models"], entries, notes)
    else:
        stored = dict(target.manifest)
        stored["evaluation_sets"] = list(dict.fromkeys([*stored.get("evaluation_sets", []), *added]))
        stored["evaluations"] = [*stored.get("evaluations", []), *entries]
    write_json(directory / "manifest.json", stored)
