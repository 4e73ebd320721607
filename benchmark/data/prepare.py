"""Shared data preparation, charged to no regime: the collections, and the training triples every cell shares.

The triples are the dataset's docpairs where it has them, else BM25-mined ones, cached on disk with the cost of
their first mining (a rerun replays that cost, so a run's charged costs do not depend on what was cached).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmark.common.files import read_json, write_json
from benchmark.common.progress import say
from benchmark.data.bm25 import BM25Index, mine_triples
from benchmark.data.collections import (
    Collection,
    default_evaluation,
    evaluation_collection,
    require_judged,
    training_collection,
)
from benchmark.data.triples import Triple, TripleStore
from benchmark.measurement.phases import Meter

if TYPE_CHECKING:
    from benchmark.run.config import RunConfig


@dataclass
class PreparedData:
    """What every cell and every evaluation of a run reads."""

    training: Collection
    evaluation: list[Collection]
    triples: TripleStore
    triples_note: dict  # where the triples came from, for the manifest


def prepare_data(config: RunConfig, meter: Meter) -> PreparedData:
    """Load the training and evaluation collections (an evaluation set without judgements is refused here), then
    the training triples."""
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
    return PreparedData(train_collection, eval_collections, triples, triples_note)


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


def text_lookup(collection: Collection):
    """Batch texts: queries from memory, documents from the ir_datasets docstore."""

    def texts(batch: Sequence[Triple]) -> tuple[list[str], list[str], list[str]]:
        queries = [collection.queries[t.query_id] for t in batch]
        docs = collection.document_texts([t.positive_id for t in batch] + [t.negative_id for t in batch])
        return queries, docs[: len(batch)], docs[len(batch) :]

    return texts
