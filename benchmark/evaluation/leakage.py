"""Leakage between the training data and each evaluation set: shared relevant documents and shared query texts.

A claim that holds on an evaluation set whose relevant documents the encoder was trained on as positives (BEIR
SciFact: 181 of its test set's 283) is an in-domain result; the report says so. Stored in the run folder as
leakage.json so that ``python -m benchmark report`` re-renders it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from benchmark.common.files import write_json
from benchmark.data.collections import Collection
from benchmark.data.triples import Triple, TripleStore
from benchmark.evaluation.systems import topics_and_qrels

FILE = "leakage.json"


def training_positives(collection: Collection, triples: Iterable[Triple] = ()) -> set[str]:
    """Documents judged relevant (grade > 0) in the training qrels; the triples' positives where there are none."""
    positives = {doc for docs in collection.qrels.values() for doc, grade in docs.items() if grade > 0}
    if positives:
        return positives
    if isinstance(triples, TripleStore):  # MS MARCO's 40M docpairs: decode each distinct positive once
        return triples.positive_ids()
    return {triple.positive_id for triple in triples}


def measure(
    train: Collection, evaluation: Sequence[tuple[Collection, pd.DataFrame, pd.DataFrame]], positives: set[str]
) -> dict[str, dict]:
    """Per evaluation set (collection, its topics and qrels as evaluated): how many of its relevant documents are
    training positives, and how many of its queries have the text of a training query."""
    training_texts = {text.strip() for text in train.queries.values()}
    out = {}
    for collection, topics, qrels in evaluation:
        relevant = set(qrels[qrels["label"].astype(int) > 0]["docno"].astype(str))
        same_text = [
            qid for qid, text in zip(topics["qid"], topics["query"], strict=True) if text.strip() in training_texts
        ]
        out[collection.name] = {
            "relevant_documents": len(relevant),
            "relevant_documents_that_are_training_positives": len(relevant & positives),
            "queries": len(topics),
            "queries_with_a_training_query_text": len(same_text),
            "same_corpus_as_training": bool(collection.corpus_key) and collection.corpus_key == train.corpus_key,
        }
    return out


def describe(eval_set: str, numbers: dict) -> str:
    """One line for the report."""
    shared, relevant = numbers["relevant_documents_that_are_training_positives"], numbers["relevant_documents"]
    queries, same = numbers["queries"], numbers["queries_with_a_training_query_text"]
    share = f" ({shared / relevant:.0%})" if relevant else ""
    domain = "in domain (same corpus as training)" if in_domain(numbers) else "out of domain"
    return (
        f"{eval_set}: {shared} of its {relevant} relevant documents are also training positives{share}; {same} of "
        f"its {queries} queries have the same text as a training query; {domain}."
    )


def in_domain(numbers: dict) -> bool:
    """Same corpus as training, or any relevant document shared with the training positives."""
    return bool(numbers.get("same_corpus_as_training")) or numbers["relevant_documents_that_are_training_positives"] > 0


def record(
    directory: Path,
    training: Collection,
    evaluation_sets: Sequence[Collection],
    triples: Iterable[Triple],
    max_queries: int | None,
) -> None:
    """Write leakage.json for the run: each evaluation set (its queries as evaluated) against the training data."""
    evaluated = [(collection, *topics_and_qrels(collection, max_queries)) for collection in evaluation_sets]
    write_json(directory / FILE, measure(training, evaluated, training_positives(training, triples)))
