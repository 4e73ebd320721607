"""BM25 with pyterrier-pisa on the tiny folder: a cached index and mined training triples."""

from __future__ import annotations

import pytest

from benchmark.data.bm25 import BM25Index, mine_triples
from benchmark.data.collections import evaluation_collection, training_collection


@pytest.fixture
def collection(tiny_beir):
    return training_collection(str(tiny_beir))


@pytest.fixture
def index(collection, tmp_path):
    index = BM25Index(collection, tmp_path / "cache")
    index.build()
    return index


def test_index_is_built_once_into_the_cache(index, collection, tmp_path):
    """The index lands under cache/bm25/<key>; a second instance (another split of the corpus) sees it built."""
    assert index.built
    assert index.path.parent == tmp_path / "cache" / "bm25"
    assert not list(index.path.parent.glob(".building-*"))  # the staging folder was renamed into place
    again = BM25Index(evaluation_collection(str(index.collection.name).rsplit(":", 1)[0]), tmp_path / "cache")
    assert again.path == index.path
    assert again.built
    before = (index.path / "done.json").stat().st_mtime_ns
    again.build()
    assert (index.path / "done.json").stat().st_mtime_ns == before


def test_unbuilt_cache_is_not_built(collection, tmp_path):
    """A fresh cache folder holds no index."""
    assert not BM25Index(collection, tmp_path / "elsewhere").built


def test_rankings_put_the_matching_document_first(index):
    """A query that shares rare words with one document ranks it first."""
    rankings = index.rankings({"q2": "smoking tobacco lung cancer", "q5": "antibiotics bacterial resistance"}, 5)
    assert rankings["q2"][0] == "d3"
    assert rankings["q5"][0] == "d9"
    assert all(len(docs) <= 5 for docs in rankings.values())


def test_mined_triples(index, collection):
    """negatives_per_positive negatives per positive, never a judged-relevant one, only for judged queries."""
    qrels = collection.qrels
    triples = mine_triples(index, collection.queries, qrels, negatives_per_positive=2, depth=10)
    positives = sum(1 for docs in qrels.values() for grade in docs.values() if grade > 0)
    assert len(triples) == 2 * positives
    for triple in triples:
        assert triple.query_id in qrels
        assert qrels[triple.query_id].get(triple.positive_id, 0) > 0
        assert qrels[triple.query_id].get(triple.negative_id, 0) <= 0
    per_positive: dict[tuple[str, str], list[str]] = {}
    for triple in triples:
        per_positive.setdefault((triple.query_id, triple.positive_id), []).append(triple.negative_id)
    assert all(len(negatives) == 2 and len(set(negatives)) == 2 for negatives in per_positive.values())
    # q1 has two positives (d1, d2): neither is ever the other's negative
    assert set(per_positive) >= {("q1", "d1"), ("q1", "d2")}
    assert not {"d1", "d2"} & set(per_positive[("q1", "d1")])


def test_mining_ignores_unjudged_queries_and_non_relevant_grades(index, collection):
    """Queries without judgments give no triples; a grade-0 judgment is a candidate negative, not a positive."""
    qrels = {"q1": {"d1": 1, "d2": 0}, "q9": {"d3": 1}}  # q9 has no query text
    triples = mine_triples(index, collection.queries, qrels, negatives_per_positive=3, depth=12)
    assert {t.query_id for t in triples} == {"q1"}
    assert {t.positive_id for t in triples} == {"d1"}
    assert len(triples) == 3
    assert "d1" not in {t.negative_id for t in triples}
    assert "d2" in {t.negative_id for t in triples}  # shares "bone" with the query, and is not relevant
