"""A small BEIR folder cut from the real SciFact (read through ir_datasets), for end-to-end tests."""

from __future__ import annotations

import json
from pathlib import Path

import ir_datasets


def write_scifact_slice(
    folder: Path, train_queries: int = 60, test_queries: int = 20, other_docs: int = 300, skip: int = 0
) -> Path:
    """Judged documents of the first queries of each split (after ``skip``), plus the first ``other_docs``."""
    splits = {"train": train_queries, "test": test_queries}
    qrels: dict[str, list[tuple[str, str, int]]] = {}
    query_ids: set[str] = set()
    for split, limit in splits.items():
        dataset = ir_datasets.load(f"beir/scifact/{split}")
        rows = list(dataset.qrels_iter())
        chosen = sorted({r.query_id for r in rows}, key=int)[skip : skip + limit]
        qrels[split] = [(r.query_id, r.doc_id, r.relevance) for r in rows if r.query_id in set(chosen)]
        query_ids.update(chosen)
    judged = {doc for rows in qrels.values() for _, doc, _ in rows}
    dataset = ir_datasets.load("beir/scifact")
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as corpus:
        for i, doc in enumerate(dataset.docs_iter()):
            if doc.doc_id in judged or i < other_docs:
                corpus.write(json.dumps({"_id": doc.doc_id, "title": doc.title, "text": doc.text}) + "\n")
    with open(folder / "queries.jsonl", "w") as queries:
        for query in dataset.queries_iter():
            if query.query_id in query_ids:
                queries.write(json.dumps({"_id": query.query_id, "text": query.text}) + "\n")
    for split, rows in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, d, g in rows]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder
