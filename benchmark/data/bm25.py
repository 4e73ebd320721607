"""BM25 from pyterrier-pisa: one index per corpus, cached; the row of the results table, the mined negatives
and the validation candidate pools all come from it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyterrier as pt
from pyterrier_pisa import PisaIndex

from benchmark.data.collections import Collection
from benchmark.data.triples import Triple


@contextlib.contextmanager
def native_output_to(log: Path) -> Iterator[None]:
    """PISA's C++ progress bars write straight to file descriptors 1 and 2; send them to a log instead."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def topics_frame(queries: dict[str, str]) -> pd.DataFrame:
    """Queries as PyTerrier topics (qid, query)."""
    return pd.DataFrame({"qid": list(queries), "query": list(queries.values())})


class BM25Index:
    """A PISA index of one corpus, built once into the cache and reused by every run."""

    def __init__(self, collection: Collection, cache_dir: Path) -> None:
        key = hashlib.sha1(collection.corpus_key.encode()).hexdigest()[:16]
        self.path = cache_dir / "bm25" / key
        self.collection = collection

    @property
    def built(self) -> bool:
        return (self.path / "done.json").exists()

    def build(self) -> None:
        """Index the corpus into a temporary folder and rename it into place, so a kill leaves no half index."""
        if self.built:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".building-", dir=self.path.parent))
        documents = ({"docno": doc_id, "text": text} for doc_id, text in self.collection.iter_documents())
        with native_output_to(staging.parent / "pisa.log"):
            PisaIndex(str(staging / "index"), text_field="text").index(documents)
        (staging / "done.json").write_text(json.dumps({"corpus": self.collection.corpus_key}))
        if self.path.exists():
            shutil.rmtree(self.path)
        staging.rename(self.path)

    def retriever(self, depth: int) -> pt.Transformer:
        self.build()
        return PisaIndex(str(self.path / "index"), text_field="text").bm25(num_results=depth)

    def rankings(self, queries: dict[str, str], depth: int) -> dict[str, list[str]]:
        """Query id -> document ids, best first."""
        return {qid: list(scored) for qid, scored in self.scores(queries, depth).items()}

    def scores(self, queries: dict[str, str], depth: int) -> dict[str, dict[str, float]]:
        """Query id -> {document id: BM25 score} for the top ``depth`` documents, best first."""
        if not queries:
            return {}
        self.build()
        with native_output_to(self.path.parent / "pisa.log"):
            results = self.retriever(depth)(topics_frame(queries))
        results = results.sort_values(["qid", "rank"])
        return {
            qid: dict(zip(group["docno"], group["score"].astype(float), strict=True))
            for qid, group in results.groupby("qid", sort=False)
        }


def mine_triples(
    index: BM25Index,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    negatives_per_positive: int,
    depth: int,
) -> list[Triple]:
    """For every judged-relevant document of every query, pair it with the top-ranked unjudged-relevant ones.

    Negatives are the highest BM25-ranked documents not judged relevant to the query (relevance > 0 counts as
    relevant), ``negatives_per_positive`` of them, shared by the query's positives.
    """
    judged = {qid: docs for qid, docs in qrels.items() if qid in queries}
    rankings = index.rankings({qid: queries[qid] for qid in judged}, depth)
    triples = []
    for qid in sorted(judged):
        relevant = {doc for doc, grade in judged[qid].items() if grade > 0}
        negatives = [doc for doc in rankings.get(qid, []) if doc not in relevant][:negatives_per_positive]
        for positive in sorted(relevant):
            triples.extend(Triple(qid, positive, negative) for negative in negatives)
    return triples
