"""Validation on held-out training queries: dense retrieval over a validation corpus, nDCG@10 with ir_measures.

Every validation encodes the validation corpus and all held-out queries with the current weights and ranks the
whole validation corpus by the encoder's similarity (no per-query candidate pools), as the test retrieval does
over the full corpus. The validation corpus is the whole corpus when it is small enough; otherwise it holds the
held-out queries' judged positives, their BM25 top-k and their initial-encoder top-k (the distractors a trained
encoder is most likely to confuse them with) and a seeded random sample of the rest (distractors it might pull in
from anywhere), so it stays cheap enough to validate often. The manifest's description says which.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import ir_measures
import numpy as np
from ir_measures import nDCG

from benchmark.data.bm25 import BM25Index
from benchmark.data.budget import Split
from benchmark.data.collections import Collection
from benchmark.data.triples import TripleStore
from benchmark.encoder import BiEncoder
from benchmark.measurement.phases import Meter

if TYPE_CHECKING:
    from benchmark.run.config import RunConfig

VALIDATION_MEASURE = nDCG @ 10
RANKING_DEPTH = 100  # documents kept per query in a validation run (nDCG@10 reads the first 10)

Rankings = Callable[[dict[str, str], int], dict[str, list[str]]]  # queries, depth -> query id -> doc ids


@dataclass(frozen=True)
class CorpusSettings:
    """How the validation corpus is composed (DataConfig's validation fields)."""

    depth: int  # BM25 and initial-encoder top-k per held-out query
    random_documents: int  # seeded random sample of the rest of the corpus
    whole_corpus_up_to: int  # the whole corpus when it has at most this many documents


@dataclass
class ValidationSet:
    """Held-out queries, their judgments and the validation corpus they are retrieved from."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    doc_texts: dict[str, str]  # the validation corpus: document id -> text
    composition: dict[str, int] = field(default_factory=dict)  # where its documents come from, in order
    corpus_documents: int = 0  # documents in the whole corpus

    @property
    def description(self) -> str:
        size = len(self.doc_texts)
        if not self.composition:
            corpus = f"the whole corpus ({size} documents)"
        else:
            parts = ", ".join(f"{count} {source}" for source, count in self.composition.items())
            corpus = f"a validation corpus of {size} of the corpus's {self.corpus_documents} documents ({parts})"
        return (
            f"dense retrieval of all {len(self.queries)} judged held-out training queries over {corpus}, ranked by "
            f"the encoder's similarity with the current weights; nDCG@10 (ir_measures)"
        )

    def score(self, encoder: BiEncoder, batch_size: int = 64) -> float:
        """nDCG@10 of the encoder's retrieval from the whole validation corpus."""
        if not self.queries:
            return float("nan")
        doc_ids = sorted(self.doc_texts)
        doc_vectors = encoder.encode([self.doc_texts[d] for d in doc_ids], "doc", batch_size)
        query_ids = list(self.queries)
        query_vectors = encoder.encode([self.queries[q] for q in query_ids], "query", batch_size)
        scores = query_vectors @ doc_vectors.T  # unit vectors for cosine: the encoder's similarity
        depth = min(RANKING_DEPTH, len(doc_ids))
        run = {}
        for query_id, row in zip(query_ids, scores, strict=True):
            top = np.argsort(-row, kind="stable")[:depth]
            run[query_id] = {doc_ids[i]: float(row[i]) for i in top}
        return float(ir_measures.calc_aggregate([VALIDATION_MEASURE], self.qrels, run)[VALIDATION_MEASURE])


def build_validation_set(
    collection: Collection,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    settings: CorpusSettings,
    seed: int,
    bm25: Rankings,
    initial_encoder: Rankings,
) -> ValidationSet:
    """The validation set of ``queries``: the whole corpus when small, else positives, BM25 and initial-encoder
    top-k (each a ranking over the whole corpus, called only when needed) and a seeded random sample."""
    total = collection.document_count
    if total <= settings.whole_corpus_up_to:
        doc_texts = dict(collection.iter_documents())
        return ValidationSet(queries, qrels, doc_texts, corpus_documents=len(doc_texts))
    chosen: dict[str, None] = {}
    composition: dict[str, int] = {}

    def add(source: str, doc_ids) -> None:
        before = len(chosen)
        chosen.update(dict.fromkeys(doc_ids))
        composition[source] = len(chosen) - before

    add("judged positives", (d for q in queries for d, grade in sorted(qrels[q].items()) if grade > 0))
    for source, rankings in (("BM25", bm25), ("initial encoder", initial_encoder)):
        ranked = rankings(queries, settings.depth)
        add(f"more from {source} top-{settings.depth}", (d for q in queries for d in ranked.get(q, [])))
    rest = sorted({doc_id for doc_id, _ in collection.iter_documents()} - set(chosen))
    add("random others", random.Random(seed).sample(rest, min(settings.random_documents, len(rest))))
    doc_ids = list(chosen)
    doc_texts = dict(zip(doc_ids, collection.document_texts(doc_ids), strict=True))
    return ValidationSet(queries, qrels, doc_texts, composition=composition, corpus_documents=total)


def validation_set(
    collection: Collection,
    split: Split,
    triples: TripleStore,
    config: RunConfig,
    meter: Meter,
    seed: int,
    initial_rankings: Rankings,
) -> ValidationSet:
    """All judged held-out queries (positives from qrels, or from their triples) and their validation corpus:
    the whole corpus when small, else positives, BM25 and initial-encoder top-k (``initial_rankings``, the
    evaluation index's dense retrieval) and a seeded random sample."""
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
            initial_encoder=initial_rankings,
        )
        record.count = len(queries)
    return validation
