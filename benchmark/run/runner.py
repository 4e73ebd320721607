"""One benchmark run: shared data preparation, then every regime on the same budget, then evaluation.

Shared phases (preparing data, mining triples, the initial encoder's validation and evaluation) are charged to no
regime; a regime is charged its own preparation, its training and its validations.

A run survives being killed: each finished cell is kept on disk (benchmark.training.cells), a rerun of the same run loads
those instead of training them (a cell cut off mid-training is trained again from scratch), and the final files are
rebuilt from all cells, so they equal an uninterrupted run's except for timings.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch

from benchmark.common import network
from benchmark.common.errors import UsageError
from benchmark.common.files import publish, read_json, write_atomic, write_csv, write_json
from benchmark.common.progress import bar, say, silence
from benchmark.data.bm25 import BM25Index, mine_triples, topics_frame
from benchmark.data.budget import Split, split_validation
from benchmark.data.collections import (
    Collection,
    default_evaluation,
    evaluation_collection,
    require_judged,
    training_collection,
)
from benchmark.data.triples import Triple, TripleStore
from benchmark.encoder import BiEncoder
from benchmark.evaluation import leakage, pairwise_accuracy
from benchmark.evaluation import systems as evaluation
from benchmark.measurement import tracking
from benchmark.measurement.phases import Meter
from benchmark.reporting import claims_report, manifest, model_card
from benchmark.reporting import tables as report
from benchmark.run.config import RunConfig
from benchmark.run.run_folder import open_run_folder
from benchmark.training import cells, distributed, tuning
from benchmark.training.cells import Cell, RegimeRun
from benchmark.training.context import RegimeContext
from benchmark.training.loop import train
from benchmark.training.validation import CorpusSettings, ValidationSet, build_validation_set
from regimes import Regime

INITIAL = "initial"
PREPARED, DONE = "prepared", "done"  # what the main process tells the serving processes (distributed.serve)
BM25 = "bm25"
CURVE_COLUMNS = ["regime", "data_fraction", "seed", "step", "examples_seen", "elapsed_s", "ndcg_at_10", "tune_point"]


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


# --- shared data preparation ------------------------------------------------------------------------
def mined_triples(collection: Collection, config: RunConfig, meter: Meter) -> tuple[TripleStore, dict]:
    """The dataset's docpairs, or BM25-mined triples cached on disk with the cost of their first mining."""
    data = config.data
    if collection.has_docpairs():
        with meter.phase("prepare-triples") as record:
            triples = collection.docpairs(limit=data.max_train_triples)
            record.count = len(triples)
        return triples, {"source": "docpairs of the dataset", "limit": data.max_train_triples}
    settings = {
        "corpus": collection.corpus_key,
        "split": collection.name,
        "negatives_per_positive": data.negatives_per_positive,
        "depth": data.mining_depth,
        "miner": "pyterrier-pisa BM25 (default parameters)",
    }
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    cache = config.cache_dir / "triples" / f"{key}.json"
    if cache.exists():
        cached = read_json(cache)
        meter.replay(cached["phase"])
        triples = TripleStore.from_rows(cached["triples"])
    else:
        index = BM25Index(collection, config.cache_dir)
        with meter.phase("mine") as record:
            say(f"Mining BM25 negatives for {collection.name} (cached after this run)")
            index.build()
            triples = mine_triples(
                index, collection.queries, collection.qrels, data.negatives_per_positive, data.mining_depth
            )
            record.count = len(triples)
        write_json(cache, {"settings": settings, "phase": record.row(), "triples": triples})
        triples = TripleStore.from_triples(triples)
    if data.max_train_triples is not None:
        triples = triples[: data.max_train_triples]
    return triples, {"source": "mined with BM25", **settings, "cache": str(cache)}


def validation_set(
    collection: Collection,
    split: Split,
    triples: TripleStore,
    config: RunConfig,
    meter: Meter,
    seed: int,
    initial: BiEncoder,
    processes: distributed.Processes = distributed.ONE_PROCESS,
) -> ValidationSet:
    """All judged held-out queries (positives from qrels, or from their triples) and their validation corpus:
    the whole corpus when small, else positives, BM25 and initial-encoder top-k and a seeded random sample."""
    data = config.data
    query_ids = split.validation_queries[: data.max_validation_queries]
    with meter.phase("prepare-validation", cell=f"seed={seed}") as record:
        qrels = {q: dict(collection.qrels.get(q, {})) for q in query_ids}
        for triple in () if collection.qrels else triples.with_queries(qrels):
            qrels[triple.query_id][triple.positive_id] = 1
        qrels = {q: docs for q, docs in qrels.items() if any(g > 0 for g in docs.values())}
        queries = {q: collection.queries[q] for q in qrels}
        validation = build_validation_set(
            collection,
            queries,
            qrels,
            CorpusSettings(data.validation_depth, data.validation_random_documents, data.validation_whole_corpus_up_to),
            seed,
            bm25=BM25Index(collection, config.cache_dir).rankings,
            initial_encoder=initial_rankings(collection, initial, config, meter, processes),
        )
        record.count = len(queries)
    return validation


def initial_rankings(
    collection: Collection,
    initial: BiEncoder,
    config: RunConfig,
    meter: Meter,
    processes: distributed.Processes = distributed.ONE_PROCESS,
):
    """Dense retrieval with the initial encoder over the whole corpus, from the initial encoder's corpus index
    that evaluation uses too (built once into the cache by every process, its cost a shared ``index`` phase,
    replayed on reuse)."""

    def rankings(queries: dict[str, str], depth: int) -> dict[str, list[str]]:
        work = config.cache_dir / "flex"  # a reusable index is built into the cache, nothing under work
        env = evaluation.EvaluationEnvironment(collection, config.cache_dir, meter, work, processes)
        results = env.dense(initial, INITIAL, reusable=True)(topics_frame(queries))
        results = results.sort_values(["qid", "rank"])
        return {qid: list(group["docno"][:depth]) for qid, group in results.groupby("qid", sort=False)}

    return rankings


def text_lookup(collection: Collection):
    """Batch texts: queries from memory, documents from the ir_datasets docstore."""

    def texts(batch: Sequence[Triple]) -> tuple[list[str], list[str], list[str]]:
        queries = [collection.queries[t.query_id] for t in batch]
        docs = collection.document_texts([t.positive_id for t in batch] + [t.negative_id for t in batch])
        return queries, docs[: len(batch)], docs[len(batch) :]

    return texts


# --- the run ----------------------------------------------------------------------------------------
def run(config: RunConfig, regimes: list[Regime], argv: list[str]) -> int:
    """Run every regime, evaluate, write the files and print the tables; returns the exit status (1 when a
    regime stopped early on a non-finite loss, after every other regime has run)."""
    specs = tuning.parse_specs(config.tune)  # refused here, before any work, if malformed
    processes = distributed.start(BiEncoder.device_for(config.encoder))
    if not processes.is_main:
        return run_worker(config, regimes, specs, processes)
    started = time.time()
    folder = open_run_folder(config)
    directory = folder.directory
    work = directory / ".work"
    shutil.rmtree(work, ignore_errors=True)  # what a killed attempt was writing
    meter: Meter | None = None
    trackers = tracking.OFF
    try:
        network_note = network.fail_fast_offline()  # before anything could try to download
        device_probe = BiEncoder.device_for(config.encoder)
        trackers = tracking.start(config.log_with, directory, directory.name, config)
        meter = Meter(
            device_probe,
            country=config.country,
            energy=config.energy,
            devices=processes.world_size,
            on_phase=trackers.log_phase if trackers.on else None,
        )
        state = RunState(directory=directory, meter=meter, reference=config.reference, processes=processes)
        state.notes["network"] = network_note
        state.notes["processes"] = processes.world_size
        state.notes["energy_scope"] = (
            "codecarbon in the main process, measuring this machine: every process on it; on several nodes, "
            "only this node"
        )
        initial = BiEncoder(config.encoder)  # a missing model fails here, before any data work
        for regime in regimes:  # and so does a missing teacher model or score file
            regime.check(config.encoder)
        initial_state = initial.state_copy()
        state.notes.update(precision=initial.precision, pooling=initial.pooling, device=str(device_probe))
        folder.check_machine(str(device_probe), initial.precision)
        begun = manifest.running(config, argv, directory, started, folder.stored, state.notes)
        write_json(directory / "manifest.json", begun)
        with meter.phase("prepare-data") as record:
            train_collection = training_collection(config.data.dataset)
            eval_specs = config.data.evaluation or (default_evaluation(config.data.dataset),)
            eval_collections = [evaluation_collection(spec) for spec in eval_specs]
            for collection in eval_collections:
                require_judged(collection)
            if not train_collection.has_docpairs():
                _ = train_collection.qrels, train_collection.queries
            record.count = len(train_collection.queries) if not train_collection.has_docpairs() else 0
        triples, triples_note = mined_triples(train_collection, config, meter)
        state.notes["triples"] = triples_note
        evaluated = [(c, *evaluation.topics_and_qrels(c, config.data.max_eval_queries)) for c in eval_collections]
        positives = leakage.training_positives(train_collection, triples)
        write_json(directory / leakage.FILE, leakage.measure(train_collection, evaluated, positives))
        processes.barrier()  # the other processes read the mined triples from the cache
        if processes.distributed:
            say(
                f"Training on {processes.world_size} processes ({torch.distributed.get_backend()}), which also share "
                "corpus encoding and teacher scoring; this one, the main process, prepares, validates, retrieves "
                "and writes"
            )
        if folder.resumed:
            say(f"Continuing run {directory.name}: finished cells are loaded, the others trained")
        texts = text_lookup(train_collection)
        for seed in config.seeds:
            split = split_validation(triples, config.data.validation_fraction, seed)
            validation = validation_set(train_collection, split, triples, config, meter, seed, initial, processes)
            state.notes.update(
                training_triples=len(split.ordered_triples),
                validation_queries=len(validation.queries),
                validation=validation.description,
            )
            say(
                f"seed {seed}: {len(split.ordered_triples)} training triples from {len(split.training_queries)} "
                f"queries; {len(split.validation_queries)} queries held out, {len(validation.queries)} of them "
                f"validate over {len(validation.doc_texts)} documents"
            )
            initial.load_state(initial_state)  # the previous seed's cells trained this object
            measure_pairwise_accuracy(initial, regimes, split, train_collection, config, meter, seed, state)
            with meter.phase("validate", cell=f"{INITIAL}|seed={seed}") as record:
                initial_validation = validation.score(initial)
                record.count = len(validation.queries)
            say(f"Initial encoder: validation nDCG@10 {initial_validation:.4f}")
            finished: dict[str, RegimeRun] = {}
            for cell, cell_config in planned_cells(regimes, specs, config, seed):
                regime_run = restore_cell(cell, state, config)
                if not processes.broadcast(regime_run is not None):  # loaded: the other processes skip it too
                    cells.start(directory, cell)
                    first_record = len(meter.records)
                    regime_run = train_regime(
                        cell,
                        initial,
                        initial_state,
                        split,
                        texts,
                        validation,
                        initial_validation,
                        train_collection,
                        cell_config,
                        meter,
                        directory,
                        processes,
                        on_metrics=trackers.for_cell(cell.id),
                    )
                    cells.save(directory, regime_run, meter.records[first_record:])
                finished[cell.id] = regime_run
                (state.tune_points if cell.label else state.regime_runs).append(regime_run)
            state.regime_runs += tuned_runs(specs, finished, config, seed, meter)
        initial.load_state(initial_state)
        # the other processes encode each corpus with this one, so every phase holds every process's accelerator
        tables = []
        for collection in eval_collections:
            tables.append(evaluate_collection(collection, initial, state, config, meter, work))
        processes.broadcast(DONE)  # the other processes stop serving and end
        results = report.result_rows(tables, state, config)
        write_outputs(state, results, config, argv, started, eval_collections, begun)
        model_card.write_for_run(directory)  # after evaluation, from the rows just written: a card needs them
        report.print_tables(results, [record.row() for record in meter.records], config.reference)
        claims_report.render(directory, config.tolerance)
        say(f"Results in {directory}")
    except UsageError:
        trackers.close()  # its files are closed before the folder may go
        if folder.created and not cells.any_finished(directory):
            shutil.rmtree(directory, ignore_errors=True)  # created by this run and holding nothing finished
        raise
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"finished cells are kept in {directory}; `--resume {directory.name}` with the same --out continues"
        ) from None
    finally:
        if meter is not None:
            meter.close()
        trackers.close()
        shutil.rmtree(work, ignore_errors=True)
        folder.close()
    stopped = [r for r in state.regime_runs if r.outcome.status != "ok"]
    for regime_run in stopped:
        say(f"{regime_run.system}: {regime_run.outcome.status}")
    return 1 if stopped else 0


def regime_context(
    cell: Cell,
    collection: Collection,
    split: Split,
    config: RunConfig,
    meter: Meter,
    encoder: BiEncoder,
    processes: distributed.Processes = distributed.ONE_PROCESS,
) -> RegimeContext:
    """What a cell's regime may use while it prepares (the same on every process): its budget, and all the
    training triples for what must not depend on the budget (teacher normalisation and scale). The main
    process passes every process, which then score teacher pairs with it; the others pass none."""
    return RegimeContext(
        label=cell.name,
        cell=cell.id,
        collection=collection,
        triples=split.budget(cell.fraction),
        encoder_config=config.encoder,
        meter=meter,
        cache_dir=config.cache_dir,
        seed=cell.seed,
        batch_size=config.training.batch_size,
        encoder=encoder,
        training_triples=split.ordered_triples,
        processes=processes,
    )


def measure_pairwise_accuracy(
    initial: BiEncoder,
    regimes: Sequence[Regime],
    split: Split,
    collection: Collection,
    config: RunConfig,
    meter: Meter,
    seed: int,
    state: RunState,
) -> None:
    """The initial encoder's and each distinct teacher's pairwise accuracy on the validation triples, charged to
    no regime; kept in the run's notes as {system: {seed: accuracy}} for the results rows."""
    specs = [regime.teacher.spec for regime in regimes if getattr(regime, "teacher", None) is not None]
    context = RegimeContext(
        label="",
        cell=f"{pairwise_accuracy.PHASE}|seed={seed}",
        collection=collection,
        triples=split.validation_triples,
        encoder_config=config.encoder,
        meter=meter,
        cache_dir=config.cache_dir,
        seed=seed,
        batch_size=config.training.batch_size,
        encoder=initial,
        training_triples=split.ordered_triples,
        processes=state.processes,
    )
    found = pairwise_accuracy.measure(initial, specs, context, split.validation_triples)
    accuracies = state.notes.setdefault("pairwise_accuracy", {})
    for system, value in found.items():
        accuracies.setdefault(system, {})[str(seed)] = value


def run_worker(
    config: RunConfig, regimes: list[Regime], specs: list[tuning.TuneSpec], processes: distributed.Processes
) -> int:
    """A training process other than the main one: it trains on its rows of every batch, in step with the main
    process, which prepares the data first (this one reads its caches), validates, evaluates and writes; while the
    main process works alone this one serves the tasks it leads (encoding a corpus, scoring teacher pairs)."""
    silence()
    device = BiEncoder.device_for(config.encoder)
    meter = Meter(device, energy=False)  # the main process measures the machine's energy
    encoder = BiEncoder(config.encoder)
    initial_state = encoder.state_copy()
    collection = training_collection(config.data.dataset)
    processes.barrier()  # the main process has mined the triples (or found them in the cache)
    triples, _ = mined_triples(collection, config, meter)
    texts = text_lookup(collection)
    for seed in config.seeds:
        split = split_validation(triples, config.data.validation_fraction, seed)
        for cell, cell_config in planned_cells(regimes, specs, config, seed):
            if processes.serve():  # finished by an earlier attempt of the run
                continue
            budget = split.budget(cell.fraction)
            encoder.load_state(initial_state)
            processes.serve()  # the main process has prepared this regime (with us); its caches are there
            cell.regime.prepare(regime_context(cell, collection, split, cell_config, meter, encoder))
            train(
                encoder,
                cell.regime,
                budget,
                texts,
                None,
                math.nan,
                cell_config.training,
                meter,
                charged_to=cell.name,
                cell=cell.id,
                seed=seed,
                processes=processes,
            )
    processes.serve()  # the corpus encodings of evaluation, until the main process is done
    meter.close()
    return 0


def planned_cells(
    regimes: list[Regime], specs: list[tuning.TuneSpec], config: RunConfig, seed: int
) -> list[tuple[Cell, RunConfig]]:
    """The cells a seed trains, in order, each with the config it trains under: every regime at each of its
    fractions, then every --tune grid point (its training settings replaced); a point two specs share once."""
    planned = [
        (Cell(regime=type(regime)(**regime.settings), fraction=fraction, seed=seed), config)
        for regime in regimes
        for fraction in config.fractions_for(regime.label)
        if seed in config.seeds_for(regime.label, fraction)
    ]
    for spec in specs:
        for fraction in config.fractions_for(spec.label):
            if seed not in config.seeds_for(spec.label, fraction):
                continue
            for point in spec.points():
                cell = Cell(regime=point.regime, fraction=fraction, seed=seed, label=point.label)
                planned.append((cell, replace(config, training=point.training_config(config.training))))
    unique: dict[str, tuple[Cell, RunConfig]] = {}
    for cell, cell_config in planned:
        unique.setdefault(cell.id, (cell, cell_config))
    return list(unique.values())


def tuned_runs(
    specs: list[tuning.TuneSpec], finished: dict[str, RegimeRun], config: RunConfig, seed: int, meter: Meter
) -> list[RegimeRun]:
    """Each --tune system at each fraction: its point selected on validation, and its search recorded as the phase
    ``tune`` charged to it (rebuilt from the points on a resumed run, never stored)."""
    runs = []
    for spec in specs:
        for fraction in config.fractions_for(spec.label):
            if seed not in config.seeds_for(spec.label, fraction):
                continue
            points = [finished[Cell(p.regime, fraction, seed, label=p.label).id] for p in spec.points()]
            run = tuning.tuned_run(spec, points, meter.records, config.is_grid)
            meter.records.append(run.tune.record)
            say(
                f"{spec.label} (fraction {fraction}, seed {seed}): selected {run.tune.selected_settings} on "
                f"validation nDCG@10 {run.outcome.best_validation:.4f} among {len(points)} points"
            )
            runs.append(run)
    return runs


def restore_cell(cell: Cell, state: RunState, config: RunConfig) -> RegimeRun | None:
    """The cell as an earlier attempt of this run finished it (its phases replayed into the meter), or None when
    it must be trained; says which, and whether a cut-off cell starts again from scratch."""
    directory = state.directory
    system = cell.system_name(config.is_grid)
    restored = cells.load(directory, cell, system)
    if restored is None:
        if cells.was_cut_off(directory, cell):
            state.origins[cell.id] = "cut off mid-training by an earlier attempt: trained again from scratch"
            say(f"{cell.id}: cut off mid-training by an earlier attempt; training it again from scratch")
        else:
            state.origins[cell.id] = "trained"
        return None
    regime_run, records = restored
    state.meter.records.extend(records)
    teacher = getattr(cell.regime, "teacher", None)
    if teacher is not None:  # a teacher is a row of the results; prepare(), which loads it, is skipped
        teacher.load(config.encoder)
    state.origins[cell.id] = "finished by an earlier attempt: loaded, not retrained"
    say(f"{cell.id}: finished by an earlier attempt; loaded, not retrained ({regime_run.outcome.status})")
    return regime_run


def train_regime(
    cell: Cell,
    encoder: BiEncoder,
    initial_state: dict,
    split: Split,
    texts,
    validation: ValidationSet,
    initial_validation: float,
    collection: Collection,
    config: RunConfig,
    meter: Meter,
    directory: Path,
    processes: distributed.Processes = distributed.ONE_PROCESS,
    on_metrics: tracking.Metrics | None = None,
) -> RegimeRun:
    """Train one cell (regime x fraction x seed) from the initial weights and save its selected checkpoint;
    ``on_metrics`` is given its steps' and validations' values (experiment tracking)."""
    regime, label = cell.regime, cell.name
    triples = split.budget(cell.fraction)
    encoder.load_state(initial_state)
    regime.prepare(regime_context(cell, collection, split, config, meter, encoder, processes))
    processes.broadcast(PREPARED)  # the other processes now prepare from this one's caches (teacher scores)
    say(
        f"Training {label} (fraction {cell.fraction}, seed {cell.seed}) on {len(triples)} triples "
        f"(ceil({cell.fraction} x {len(split.ordered_triples)}))"
    )
    with bar(
        f"train {label} f={cell.fraction} seed={cell.seed}", total=len(triples) * config.training.epochs
    ) as advance:
        outcome = train(
            encoder,
            regime,
            triples,
            texts,
            validation,
            initial_validation,
            config.training,
            meter,
            charged_to=label,
            cell=cell.id,
            seed=cell.seed,
            on_step=advance,
            on_validation=checkpoint_keeper(encoder, cell, meter, directory) if config.keep_checkpoints else None,
            processes=processes,
            on_metrics=on_metrics,
        )
    if outcome.steps == 0 and outcome.status == "ok":
        raise UsageError(
            f"{label} got no batch from its {len(triples)} budget triples at data fraction {cell.fraction}; "
            "raise --data-fraction"
        )
    say(
        f"{label}: {outcome.examples_consumed} examples in {outcome.steps} steps; best validation nDCG@10 "
        f"{outcome.best_validation:.4f} at step {outcome.best_step} ({outcome.selection}); {outcome.status}"
    )
    system = cell.system_name(config.is_grid)
    model_dir = directory / "models" / evaluation.safe_name(system)
    staging = cells.folder(directory, cell) / "model"
    encoder.save(staging)
    cells.place_model(staging, model_dir)
    return RegimeRun(cell=cell, system=system, budget=len(triples), outcome=outcome, model_dir=model_dir)


def checkpoint_keeper(encoder: BiEncoder, cell: Cell, meter: Meter, directory: Path):
    """``--keep-checkpoints``: save every validated checkpoint under cells/<cell>/checkpoints/step-<n>/ (by default
    only the selected one is kept, in models/). Saving is measured as its own phase, charged to no regime."""

    def keep(step: int) -> None:
        with meter.phase("save-checkpoint", cell=cell.id) as record:
            encoder.save(cells.folder(directory, cell) / "checkpoints" / f"step-{step}")
            record.count = 1

    return keep


def evaluate_collection(
    collection: Collection, initial: BiEncoder, state: RunState, config: RunConfig, meter: Meter, work: Path
):
    """Index the corpus with every encoder, retrieve, and compare all systems with one pt.Experiment; with
    ``--evaluate-all`` the --tune points in a second one, so they do not change the systems' multiple-testing
    correction (the selection never sees either). ``state`` needs only ``directory``, ``regime_runs`` and
    ``tune_points``, each with ``system``, ``model_dir`` and ``regime`` (None: no extra systems), so ``evaluate``
    passes a finished run's saved systems (benchmark.run.evaluate)."""
    topics, qrels = evaluation.topics_and_qrels(collection, config.data.max_eval_queries)
    name = evaluation.safe_name(collection.name)
    processes = getattr(state, "processes", distributed.ONE_PROCESS)  # every process encodes the corpora
    env = evaluation.EvaluationEnvironment(collection, config.cache_dir, meter, work / name, processes)
    # every encoder is evaluated with the same inference treatment (bf16 weights where the precision is bf16);
    # a copy, because ``initial`` keeps its fp32 weights for the caller
    initial_for_inference = copy.deepcopy(initial).for_inference()
    systems = {BM25: env.bm25(1000), INITIAL: env.dense(initial_for_inference, INITIAL, reusable=True)}
    unevaluable: list[str] = []
    for regime_run in state.regime_runs:
        label = regime_run.system
        trained = BiEncoder(config.encoder, str(regime_run.model_dir)).for_inference()
        systems[label] = env.dense(trained, label)
        extras = regime_run.regime.evaluation_systems(env) if regime_run.regime is not None else {}
        for extra, system in extras.items():
            if system is None:
                unevaluable.append(extra)
            else:
                systems.setdefault(extra, system)
    points = {INITIAL: systems[INITIAL]}
    for point in state.tune_points if config.evaluate_all else []:
        trained = BiEncoder(config.encoder, str(point.model_dir)).for_inference()
        points[point.system] = env.dense(trained, point.system)
    with meter.phase("evaluate", cell=collection.name) as record:
        say(f"Evaluating {len(systems) + len(points) - 1} systems on {collection.name} ({len(topics)} queries)")
        staging = work / f"runs-{name}"  # run files are written here, then each renamed into runs/<name>/
        table = evaluation.experiment(systems, topics, qrels, INITIAL, staging)
        if len(points) > 1:
            tune_table = evaluation.experiment(points, topics, qrels, INITIAL, staging)
            table = pd.concat([table, tune_table[tune_table["system"] != INITIAL]], ignore_index=True)
        write_atomic(staging / "topics.tsv", topics.to_csv(sep="\t", index=False))
        write_atomic(staging / "qrels.tsv", qrels.to_csv(sep="\t", index=False))
        publish(staging, state.directory / "runs" / name)
        record.count = len(topics)
    for extra in dict.fromkeys(unevaluable):
        table.loc[len(table), ["system", "status"]] = [extra, "cannot be evaluated as a retrieval system"]
    table.insert(0, "eval_set", collection.name)
    table.insert(1, "queries", len(topics))
    return table


def write_outputs(state, results, config, argv, started, eval_collections, begun: dict | None = None) -> None:
    directory = state.directory
    write_csv(directory / "results.csv", results)
    write_csv(directory / "phases.csv", (record.row() for record in state.meter.records))
    selected = {run.tune.selected_run.cell.id for run in state.regime_runs if run.tune}
    unselected = [run for run in state.tune_points if run.cell.id not in selected]  # shown by their tuned label
    unselected_ids = {run.cell.id for run in unselected}
    curves = [
        {
            "regime": run.cell.name,
            "data_fraction": run.cell.fraction,
            "seed": run.cell.seed,
            **vars(point),
            "tune_point": run.cell.id in unselected_ids,
        }
        for run in [*state.regime_runs, *unselected]
        for point in run.outcome.curve
    ]
    write_csv(directory / "curves.csv", curves, CURVE_COLUMNS)
    write_json(
        directory / "manifest.json",
        manifest.build(config, argv, state, started, [c.name for c in eval_collections], begun),
    )
