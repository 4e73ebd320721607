"""One seed of a run: its split and validation set, then every cell trained (or loaded from an earlier attempt of
the run) in turn, then the --tune systems selected on validation.

The main process leads; every other process follows the same sequence of collectives (``follow_seed``): it trains
on its rows of each batch and serves the tasks the main process shares out (corpus encoding, teacher scoring).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.common.errors import UsageError
from benchmark.common.files import safe_name
from benchmark.common.progress import bar, say
from benchmark.data.budget import Split, split_validation
from benchmark.data.collections import Collection
from benchmark.data.prepare import PreparedData, text_lookup
from benchmark.encoder import INITIAL, BiEncoder
from benchmark.measurement import tracking
from benchmark.measurement.phases import Meter
from benchmark.training import cells, distributed, tuning
from benchmark.training.cells import Cell, RegimeRun, RunState
from benchmark.training.context import RegimeContext
from benchmark.training.loop import train
from benchmark.training.validation import Rankings, ValidationSet, validation_set
from regimes import Regime

if TYPE_CHECKING:
    from benchmark.run.config import RunConfig

PREPARED = "prepared"  # what the main process tells the serving processes once a regime is prepared


def prepare_seed(
    seed: int, data: PreparedData, config: RunConfig, state: RunState, initial_rankings: Rankings
) -> tuple[Split, ValidationSet]:
    """The seed's split of the triples (its seeded order, held-out queries) and its validation set."""
    split = split_validation(data.triples, config.data.validation_fraction, seed)
    validation = validation_set(data.training, split, data.triples, config, state.meter, seed, initial_rankings)
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
    return split, validation


def train_seed(
    seed: int,
    split: Split,
    validation: ValidationSet,
    data: PreparedData,
    initial: BiEncoder,
    initial_state: dict,
    regimes: list[Regime],
    specs: list[tuning.TuneSpec],
    config: RunConfig,
    state: RunState,
    trackers: tracking.Tracking,
) -> None:
    """Validate the initial weights (every cell's step 0), then train or load every cell of the seed; the runs go
    to ``state`` (regimes, then the --tune systems; their grid points apart)."""
    meter, directory, processes = state.meter, state.directory, state.processes
    with meter.phase("validate", cell=f"{INITIAL}|seed={seed}") as record:
        initial_validation = validation.score(initial)
        record.count = len(validation.queries)
    say(f"Initial encoder: validation nDCG@10 {initial_validation:.4f}")
    texts = text_lookup(data.training)
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
                data.training,
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


def follow_seed(
    seed: int,
    triples,
    collection: Collection,
    encoder: BiEncoder,
    initial_state: dict,
    regimes: list[Regime],
    specs: list[tuning.TuneSpec],
    config: RunConfig,
    meter: Meter,
    processes: distributed.Processes,
) -> None:
    """``train_seed`` on a process other than the main one: its rows of every batch of every cell the main
    process trains, in step with it."""
    texts = text_lookup(collection)
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
    model_dir = directory / "models" / safe_name(system)
    staging = cells.folder(directory, cell) / "model"
    encoder.save(staging)
    cells.place_model(staging, model_dir)
    return RegimeRun(cell=cell, system=system, budget=len(triples), outcome=outcome, model_dir=model_dir)


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


def checkpoint_keeper(encoder: BiEncoder, cell: Cell, meter: Meter, directory: Path):
    """``--keep-checkpoints``: save every validated checkpoint under cells/<cell>/checkpoints/step-<n>/ (by default
    only the selected one is kept, in models/). Saving is measured as its own phase, charged to no regime."""

    def keep(step: int) -> None:
        with meter.phase("save-checkpoint", cell=cell.id) as record:
            encoder.save(cells.folder(directory, cell) / "checkpoints" / f"step-{step}")
            record.count = 1

    return keep
