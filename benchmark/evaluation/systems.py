"""Effectiveness through PyTerrier: encoders wrapped for pyterrier-dr, the corpus in a FlexIndex, the systems
compared with ``pt.Experiment`` (paired t-tests against the initial encoder, Holm-corrected), run files in TREC
format.

On several processes a corpus is encoded by all of them (:func:`build_index`): the main process reads the
documents, hands each process its own run of ``CHUNK`` documents in turn, and writes the gathered embeddings into
the one FlexIndex; retrieval and ``pt.Experiment`` stay on the main process.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_dr
import torch
from ir_measures import RR, R, nDCG

from benchmark.common.files import safe_name
from benchmark.common.progress import bar
from benchmark.data.bm25 import topics_frame
from benchmark.data.collections import Collection
from benchmark.encoder import INITIAL, BiEncoder, EncoderConfig
from benchmark.measurement.phases import Meter, PhaseRecord
from benchmark.training.distributed import ONE_PROCESS, Processes, Task

MEASURES = [nDCG @ 10, RR @ 10, R @ 100, R @ 1000]
MEASURE_NAMES = [str(m) for m in MEASURES]
SIGNIFICANCE_LEVEL = 0.05
BM25 = "bm25"  # with INITIAL (benchmark.encoder), the systems every evaluation has
CHUNK = 1024  # documents pyterrier-dr hands the encoder at a time, and a process's run of a sharded corpus


class PyTerrierBiEncoder(pyterrier_dr.BiEncoder):
    """Our encoder as a pyterrier-dr BiEncoder, so ``encoder >> index.retriever()`` is a PyTerrier pipeline.

    Embeddings are unit length when the similarity is cosine, so the FlexIndex's dot product is that similarity.
    """

    def __init__(self, encoder: BiEncoder, progress: Callable[[int], None] | None = None) -> None:
        super().__init__(batch_size=CHUNK, verbose=False)
        self.encoder = encoder
        self.progress = progress

    def encode_queries(self, texts, batch_size=None) -> np.ndarray:
        return self.encoder.encode(list(texts), "query")

    def encode_queries_torch(self, texts, batch_size=None):
        raise NotImplementedError("training goes through benchmark.training.loop, not pyterrier-dr")

    def encode_docs(self, texts, batch_size=None) -> np.ndarray:
        return self.encoder.encode(list(texts), "doc", progress=self.progress)

    def __repr__(self) -> str:
        return f"PyTerrierBiEncoder({self.encoder.config.model})"


def build_index(
    encoder: BiEncoder,
    collection: Collection,
    path: Path,
    progress: Callable[[int], None] | None = None,
    processes: Processes = ONE_PROCESS,
) -> pyterrier_dr.FlexIndex:
    """Encode the whole corpus into a fresh FlexIndex at ``path``; on several processes, with all of them (the
    main process calls this; the others serve :class:`EncodeCorpus`)."""
    if path.exists():
        shutil.rmtree(path)
    index = pyterrier_dr.FlexIndex(str(path), verbose=False)
    documents = ({"docno": doc_id, "text": text} for doc_id, text in collection.iter_documents())
    if not processes.distributed:
        pipeline = PyTerrierBiEncoder(encoder, progress) >> index.indexer(mode="overwrite")
        pipeline.index(documents)
        return index
    processes.lead(EncodeCorpus.of(encoder))
    index.indexer(mode="overwrite").index(sharded_vectors(encoder, documents, processes, progress))
    return index


def sharded_vectors(
    encoder: BiEncoder,
    documents: Iterable[dict],
    processes: Processes,
    progress: Callable[[int], None] | None = None,
) -> Iterator[dict]:
    """``{"docno", "doc_vec"}`` of every document in corpus order, each process encoding every ``world_size``-th
    run of CHUNK documents: the same batches as one process, whose pyterrier-dr pipeline encodes CHUNK at a time."""
    documents = iter(documents)
    while group := list(itertools.islice(documents, CHUNK * processes.world_size)):
        runs = [group[start : start + CHUNK] for start in range(0, CHUNK * processes.world_size, CHUNK)]
        mine = processes.scatter([[d["text"] for d in run] for run in runs])
        vectors = processes.gather(encode_documents(encoder, mine))
        for run, run_vectors in zip(runs, vectors, strict=True):
            for document, vector in zip(run, run_vectors, strict=True):
                yield {"docno": document["docno"], "doc_vec": vector}
        if progress is not None:
            progress(len(group))
    processes.scatter([None] * processes.world_size)  # the end of the corpus


def encode_documents(encoder: BiEncoder, texts: list[str]) -> np.ndarray:
    """Document embeddings of a run, which the corpus's last group may leave empty."""
    if not texts:
        return np.zeros((0, encoder.dimension), dtype=np.float32)
    return encoder.encode(texts, "doc")


@dataclass
class EncodeCorpus(Task):
    """The other processes' part of :func:`build_index`: the main process's encoder, rebuilt from its settings and
    its very weights (so an encoder never saved, or saved elsewhere, encodes the same), then their runs."""

    config: EncoderConfig
    path: str
    dtype: str
    state: dict

    @classmethod
    def of(cls, encoder: BiEncoder) -> EncodeCorpus:
        dtype = str(next(encoder.model.parameters()).dtype)
        return cls(encoder.config, encoder.path, dtype, encoder.state_copy())

    def serve(self, processes: Processes) -> None:
        encoder = BiEncoder(self.config, self.path)
        if self.dtype != str(torch.float32):
            encoder.for_inference()
        encoder.load_state(self.state)
        encoder.eval()
        while (texts := processes.scatter(None)) is not None:
            processes.gather(encode_documents(encoder, texts))


class EvaluationEnvironment:
    """Systems on one evaluation set: BM25 and dense retrievers, each corpus encoding built once and measured.

    Regimes use it to add rows of their own (a teacher); an encoder with the same model and settings as one
    already indexed reuses that index.
    """

    def __init__(
        self, collection: Collection, cache_dir: Path, meter, work: Path, processes: Processes = ONE_PROCESS
    ) -> None:
        self.collection = collection
        self.processes = processes  # who encodes the corpus: every process, led by this (the main) one
        self.cache_dir = cache_dir
        self.meter = meter
        self.work = work
        self._indexes: dict[tuple, pyterrier_dr.FlexIndex] = {}  # by encoder identity
        self._bm25 = None

    def bm25(self, depth: int) -> pt.Transformer:
        from benchmark.data.bm25 import BM25Index

        if self._bm25 is None:
            with self.meter.phase("index", cell="bm25") as record:
                self._bm25 = BM25Index(self.collection, self.cache_dir)
                self._bm25.build()
                record.count = self.collection.document_count
        return self._bm25.retriever(depth)

    def dense(self, encoder: BiEncoder, label: str | None = None, reusable: bool = False) -> pt.Transformer:
        """``encoder >> FlexIndex retriever``. A ``reusable`` encoder (untrained weights: the initial encoder, a
        teacher) is indexed once per corpus into the cache; later runs reuse that index and record the original
        encoding cost, marked as reused."""
        key = encoder.identity
        if key not in self._indexes:
            label = label or encoder.config.model
            if reusable:
                self._indexes[key] = self._cached_index(encoder, label)
            else:
                self._indexes[key] = self._build(encoder, label, self.work / f"index-{len(self._indexes)}")[0]
        return retriever(encoder, self._indexes[key])

    def _build(self, encoder: BiEncoder, label: str, path: Path) -> tuple[pyterrier_dr.FlexIndex, PhaseRecord]:
        with self.meter.phase("index", cell=label) as record:
            total = self.collection.document_count
            with bar(f"index {self.collection.name} with {label}", total=total) as advance:
                index = build_index(encoder, self.collection, path, advance, self.processes)
            record.count = total
        return index, record

    def _cached_index(self, encoder: BiEncoder, label: str) -> pyterrier_dr.FlexIndex:
        digest = hashlib.sha1(json.dumps([list(encoder.identity), self.collection.corpus_key]).encode()).hexdigest()
        final = self.cache_dir / "flex" / digest[:16]
        if (final / "phase.json").exists():
            self.meter.replay(json.loads((final / "phase.json").read_text()), cell=label)
            return pyterrier_dr.FlexIndex(str(final / "index"), verbose=False)
        staging = final.parent / f".building-{digest[:16]}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        _, record = self._build(encoder, label, staging / "index")
        (staging / "phase.json").write_text(json.dumps(record.row()))
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)  # atomic: a killed run leaves only a staging folder, never a half index
        return pyterrier_dr.FlexIndex(str(final / "index"), verbose=False)


def retriever(encoder: BiEncoder, index: pyterrier_dr.FlexIndex) -> pt.Transformer:
    return PyTerrierBiEncoder(encoder) >> index.np_retriever(num_results=1000)


def topics_and_qrels(collection: Collection, max_queries: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The judged queries of an evaluation set (the first ``max_queries`` by id when limited) and their qrels."""
    query_ids = sorted(q for q in collection.qrels if q in collection.queries)
    if max_queries is not None:
        query_ids = query_ids[:max_queries]
    topics = pd.DataFrame({"qid": query_ids, "query": [collection.queries[q] for q in query_ids]})
    rows = [(qid, doc_id, grade) for qid in query_ids for doc_id, grade in collection.qrels[qid].items()]
    qrels = pd.DataFrame(rows, columns=["qid", "docno", "label"])
    return topics, qrels


def experiment(
    systems: dict[str, pt.Transformer],
    topics: pd.DataFrame,
    qrels: pd.DataFrame,
    baseline: str,
    run_dir: Path,
) -> pd.DataFrame:
    """``pt.Experiment`` over all systems; one row per system with measures, deltas and corrected p-values."""
    run_dir.mkdir(parents=True, exist_ok=True)
    names = list(systems)
    table = pt.Experiment(
        list(systems.values()),
        topics,
        qrels,
        eval_metrics=MEASURES,
        names=[safe_name(n) for n in names],
        baseline=names.index(baseline),
        test="t",
        correction="holm",
        save_dir=str(run_dir),
        save_mode="overwrite",
        save_format="trec",
        verbose=False,
    )
    table.insert(0, "system", names)
    baseline_row = table.iloc[names.index(baseline)]
    for measure in MEASURE_NAMES:  # the mean of the paired per-query differences, which the t-test tests
        table[difference_column(measure)] = table[measure] - baseline_row[measure]
    return table.drop(columns=["name"])


def difference_column(measure: str) -> str:
    return f"{measure} mean difference"


def significant(row: pd.Series, measure: str) -> str:
    """'+' or '-' when the Holm-corrected paired t-test rejects at 0.05 against the baseline, else ''.

    The sign is that of the mean difference to the baseline (what the t-test tests), not of queries won minus
    queries lost: a system can win more queries and still be significantly worse on average.
    """
    corrected = row.get(f"{measure} p-value corrected")
    if corrected is None or pd.isna(corrected) or corrected >= SIGNIFICANCE_LEVEL:
        return ""
    difference = row[difference_column(measure)]
    if pd.isna(difference) or difference == 0:
        return ""
    return "+" if difference > 0 else "-"


def initial_rankings(
    collection: Collection,
    initial: BiEncoder,
    cache_dir: Path,
    meter: Meter,
    processes: Processes = ONE_PROCESS,
):
    """Dense retrieval with the initial encoder over the whole corpus (for the validation corpus), from the initial
    encoder's corpus index that evaluation uses too (built once into the cache by every process, its cost a shared
    ``index`` phase, replayed on reuse)."""

    def rankings(queries: dict[str, str], depth: int) -> dict[str, list[str]]:
        work = cache_dir / "flex"  # a reusable index is built into the cache, nothing under work
        env = EvaluationEnvironment(collection, cache_dir, meter, work, processes)
        results = env.dense(initial, INITIAL, reusable=True)(topics_frame(queries))
        results = results.sort_values(["qid", "rank"])
        return {qid: list(group["docno"][:depth]) for qid, group in results.groupby("qid", sort=False)}

    return rankings
