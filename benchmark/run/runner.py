"""One benchmark run, as the stages a reader can follow in ``run``: prepare the data, train every cell of every
seed, evaluate every system, write the files, report.

Shared phases (preparing data, mining triples, the initial encoder's validation and evaluation) are charged to no
regime; a regime is charged its own preparation, its training and its validations.

A run survives being killed: each finished cell is kept on disk (benchmark.training.cells), a rerun of the same
run loads those instead of training them (a cell cut off mid-training is trained again from scratch), and the
final files are rebuilt from all cells, so they equal an uninterrupted run's except for timings.
"""

from __future__ import annotations

import shutil
import time

import torch

from benchmark.common import network
from benchmark.common.errors import UsageError
from benchmark.common.files import write_json
from benchmark.common.progress import say, silence
from benchmark.data.collections import training_collection
from benchmark.data.prepare import PreparedData, mined_triples, prepare_data
from benchmark.encoder import BiEncoder
from benchmark.evaluation import leakage, pairwise_accuracy
from benchmark.evaluation.evaluate_run import evaluate_collection
from benchmark.evaluation.systems import initial_rankings
from benchmark.measurement import tracking
from benchmark.measurement.phases import Meter
from benchmark.reporting import manifest
from benchmark.reporting.outputs import report_run, write_run
from benchmark.run.config import RunConfig
from benchmark.run.run_folder import RunFolder, open_run_folder
from benchmark.training import cells, distributed, tuning
from benchmark.training.cells import RunState
from benchmark.training.seeds import follow_seed, prepare_seed, train_seed
from regimes import Regime

DONE = "done"  # what the main process tells the serving processes when it has nothing more to share


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
        trackers = tracking.start(config.log_with, directory, directory.name, config)
        meter = Meter(
            BiEncoder.device_for(config.encoder),
            country=config.country,
            energy=config.energy,
            devices=processes.world_size,
            on_phase=trackers.log_phase if trackers.on else None,
        )
        state = RunState(directory=directory, meter=meter, reference=config.reference, processes=processes)
        state.notes["network"] = network_note
        initial = BiEncoder(config.encoder)  # a missing model fails here, before any data work
        initial_state = initial.state_copy()
        begun = begin(config, regimes, argv, folder, state, initial, started)

        data = prepare_data(config, meter)
        state.notes["triples"] = data.triples_note
        leakage.record(directory, data.training, data.evaluation, data.triples, config.data.max_eval_queries)
        processes.barrier()  # the other processes read the mined triples from the cache
        announce(processes, folder)

        for seed in config.seeds:
            rankings = initial_rankings(data.training, initial, config.cache_dir, meter, processes)
            split, validation = prepare_seed(seed, data, config, state, rankings)
            initial.load_state(initial_state)  # the previous seed's cells trained this object
            pairwise_accuracy.measure_for_seed(initial, regimes, split, data.training, config, meter, seed, state)
            train_seed(seed, split, validation, data, initial, initial_state, regimes, specs, config, state, trackers)

        initial.load_state(initial_state)
        tables = evaluate(data, initial, state, config, work)
        processes.broadcast(DONE)  # the other processes stop serving and end

        results = write_run(state, tables, config, argv, started, data.evaluation, begun)
        report_run(state, results, config)
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


def begin(
    config: RunConfig,
    regimes: list[Regime],
    argv: list[str],
    folder: RunFolder,
    state: RunState,
    initial: BiEncoder,
    started: float,
) -> dict:
    """Check what can fail before any data work (every teacher model or score file, the machine a resumed run
    was started on) and write the manifest of a running run; returns it."""
    for regime in regimes:  # a missing teacher model or score file fails here
        regime.check(config.encoder)
    device = BiEncoder.device_for(config.encoder)
    state.notes["processes"] = state.processes.world_size
    state.notes["energy_scope"] = (
        "codecarbon in the main process, measuring this machine: every process on it; on several nodes, only this node"
    )
    state.notes.update(
        precision=initial.precision, pooling=initial.pooling, device=str(device), inference_engine=initial.engine
    )
    folder.check_machine(str(device), initial.precision, initial.engine)
    begun = manifest.running(config, argv, folder.directory, started, folder.stored, state.notes)
    write_json(folder.directory / "manifest.json", begun)
    return begun


def announce(processes: distributed.Processes, folder: RunFolder) -> None:
    """Say how the work is shared out, and whether an earlier attempt's cells are reused."""
    if processes.distributed:
        say(
            f"Training on {processes.world_size} processes ({torch.distributed.get_backend()}), which also share "
            "corpus encoding and teacher scoring; this one, the main process, prepares, validates, retrieves "
            "and writes"
        )
    if folder.resumed:
        say(f"Continuing run {folder.directory.name}: finished cells are loaded, the others trained")


def evaluate(data: PreparedData, initial: BiEncoder, state: RunState, config: RunConfig, work) -> list:
    """Every evaluation set: the other processes encode each corpus with this one, so every phase holds every
    process's accelerator."""
    return [
        evaluate_collection(collection, initial, state, config, state.meter, work) for collection in data.evaluation
    ]


def run_worker(
    config: RunConfig, regimes: list[Regime], specs: list[tuning.TuneSpec], processes: distributed.Processes
) -> int:
    """A training process other than the main one: it trains on its rows of every batch, in step with the main
    process, which prepares the data first (this one reads its caches), validates, evaluates and writes; while the
    main process works alone this one serves the tasks it leads (encoding a corpus, scoring teacher pairs)."""
    silence()
    meter = Meter(BiEncoder.device_for(config.encoder), energy=False)  # the main process measures the energy
    encoder = BiEncoder(config.encoder)
    initial_state = encoder.state_copy()
    collection = training_collection(config.data.dataset)
    processes.barrier()  # the main process has mined the triples (or found them in the cache)
    triples, _ = mined_triples(collection, config, meter)
    for seed in config.seeds:
        follow_seed(seed, triples, collection, encoder, initial_state, regimes, specs, config, meter, processes)
    processes.serve()  # the corpus encodings of evaluation, until the main process is done
    meter.close()
    return 0
