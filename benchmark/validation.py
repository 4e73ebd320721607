"""Validation on held-out training queries: re-rank a fixed candidate pool, score nDCG@10 with ir_measures.

The pool (BM25 top-k plus each query's judged-relevant documents) keeps validation cheap enough to run every
few steps; it measures re-ranking quality, not full-corpus retrieval, and the manifest says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import ir_measures
import numpy as np
from ir_measures import nDCG

from benchmark.encoder import BiEncoder

VALIDATION_MEASURE = nDCG @ 10


@dataclass
class ValidationSet:
    """Held-out queries, their judgments and their candidate documents."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    pools: dict[str, list[str]]  # query id -> candidate document ids
    doc_texts: dict[str, str]

    @property
    def description(self) -> str:
        sizes = [len(pool) for pool in self.pools.values()]
        return (
            f"re-rank pools of {len(self.queries)} held-out training queries "
            f"(BM25 top-k plus judged positives; {int(np.mean(sizes)) if sizes else 0} documents per query)"
        )

    def score(self, encoder: BiEncoder, batch_size: int = 64) -> float:
        """nDCG@10 of the encoder's ranking of each pool."""
        if not self.queries:
            return float("nan")
        doc_ids = sorted(self.doc_texts)
        doc_vectors = encoder.encode([self.doc_texts[d] for d in doc_ids], "doc", batch_size)
        position = {doc_id: i for i, doc_id in enumerate(doc_ids)}
        query_ids = list(self.queries)
        query_vectors = encoder.encode([self.queries[q] for q in query_ids], "query", batch_size)
        run = {}
        for query_id, query_vector in zip(query_ids, query_vectors, strict=True):
            pool = self.pools[query_id]
            scores = doc_vectors[[position[d] for d in pool]] @ query_vector
            run[query_id] = {doc: float(score) for doc, score in zip(pool, scores, strict=True)}
        return float(ir_measures.calc_aggregate([VALIDATION_MEASURE], self.qrels, run)[VALIDATION_MEASURE])
