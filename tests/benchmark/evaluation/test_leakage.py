"""Leakage between the training split and an evaluation set, on a tiny BEIR folder read through ir_datasets."""

from __future__ import annotations

from benchmark.data.collections import evaluation_collection, training_collection
from benchmark.data.triples import Triple
from benchmark.evaluation import leakage
from benchmark.evaluation import systems as evaluation
from tests.benchmark.conftest import TEST_QRELS, write_beir


def measured(folder, max_queries=None) -> dict:
    train, test = training_collection(str(folder)), evaluation_collection(str(folder))
    evaluated = [(test, *evaluation.topics_and_qrels(test, max_queries))]
    return leakage.measure(train, evaluated, leakage.training_positives(train))[test.name]


def test_shared_relevant_documents_and_query_texts(tiny_beir, tmp_path):
    """The tiny test split: q3 is also a training query (same text); none of d12, d10, d6 is a training positive.
    With d1 (a training positive of q1) judged relevant for q8 and d5 judged non-relevant, 1 of 4 is shared."""
    numbers = measured(tiny_beir)
    assert numbers == {
        "relevant_documents": 3,
        "relevant_documents_that_are_training_positives": 0,
        "queries": 3,
        "queries_with_a_training_query_text": 1,
        "same_corpus_as_training": True,
    }
    assert leakage.in_domain(numbers)  # the same corpus
    shared = write_beir(tmp_path / "shared", test=[*TEST_QRELS, ("q8", "d1", 2), ("q7", "d5", 0)])
    numbers = measured(shared)
    assert numbers["relevant_documents"] == 4  # grade 0 is not relevant
    assert numbers["relevant_documents_that_are_training_positives"] == 1
    assert "1 of its 4 relevant documents are also training positives (25%); 1 of its 3 queries" in (
        leakage.describe("x", numbers)
    )


def test_positives_from_triples_when_the_training_data_has_no_qrels(tiny_beir):
    class NoQrels:
        qrels: dict = {}

    assert leakage.training_positives(NoQrels(), [Triple("q", "d1", "d2")]) == {"d1"}
    assert "d1" in leakage.training_positives(training_collection(str(tiny_beir)), [Triple("q", "zz", "d2")])


def test_a_different_corpus_with_no_shared_positives_is_out_of_domain():
    numbers = {"relevant_documents_that_are_training_positives": 0, "same_corpus_as_training": False}
    assert not leakage.in_domain(numbers)
