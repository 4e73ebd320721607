"""Every system of a run on one evaluation set: BM25, the initial encoder, each trained encoder and what its regime
adds (a teacher), indexed with pyterrier-dr, retrieved and compared in one ``pt.Experiment``; the run files are
kept under ``runs/<set>/``."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd

from benchmark.common.files import publish, write_atomic
from benchmark.common.progress import say
from benchmark.data.collections import Collection
from benchmark.encoder import INITIAL, BiEncoder
from benchmark.evaluation import systems as evaluation
from benchmark.evaluation.systems import BM25
from benchmark.measurement.phases import Meter
from benchmark.training import distributed


def evaluate_collection(collection: Collection, initial: BiEncoder, state, config, meter: Meter, work: Path):
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
