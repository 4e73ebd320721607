"""Corpus encoding throughput: this project's encoder against pyterrier-dr's SBertBiEncoder (fp32), side by side.

Same model (all-MiniLM-L6-v2), same documents (SciFact, or its first --docs), same max length. The peer encodes
in batches of --batch-size; this project's encoder in its evaluation setting: with the default inference engine
(OpenVINO on a CPU: length-sorted batches of at most 2,048 tokens, two at a time) or with --engine torch
(length-sorted batches of --batch-size, bf16 weights). Prints documents per second of each side, their ratio, the
cosine between the two embeddings of each document, and (with the whole corpus) nDCG@10 of both on
beir/scifact/test through pt.Experiment.

    python benchmarks/encoding_throughput.py [--docs 1000] [--precision auto] [--engine auto]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyterrier as pt
import pyterrier_dr

from benchmark.data.collections import evaluation_collection
from benchmark.encoder import DEFAULT_MODEL, INFERENCE_ENGINES, BiEncoder, EncoderConfig, resolve_model
from benchmark.evaluation.systems import MEASURES, retriever, topics_and_qrels


def compare(
    texts: list[str], max_length: int = 256, batch_size: int = 32, precision: str = "auto", engine: str = "auto"
) -> tuple[dict, np.ndarray, np.ndarray, BiEncoder, pyterrier_dr.SBertBiEncoder]:
    """Both sides encode ``texts``, timed one after the other in this process; the figures and both embeddings."""
    peer = pyterrier_dr.SBertBiEncoder(resolve_model(DEFAULT_MODEL), batch_size=batch_size, device="cpu")
    peer.model.max_seq_length = max_length
    # The evaluation path: a trained encoder is indexed with its weights in the inference precision.
    ours = BiEncoder(
        EncoderConfig(max_doc_length=max_length, precision=precision, device="cpu", inference_engine=engine)
    )
    ours.for_inference()

    peer.encode_docs(texts[:16])  # warm up both sides
    ours.encode(texts[:16], "doc", batch_size)
    started = time.perf_counter()
    peer_vectors = peer.encode_docs(texts)
    peer_seconds = time.perf_counter() - started
    started = time.perf_counter()
    our_vectors = ours.encode(texts, "doc", batch_size)
    our_seconds = time.perf_counter() - started
    cosine = (peer_vectors * our_vectors).sum(1) / (
        np.linalg.norm(peer_vectors, axis=1) * np.linalg.norm(our_vectors, axis=1)
    )
    figures = {
        "documents": len(texts),
        "max_length": max_length,
        "batch_size": batch_size,
        "precision": ours.precision,
        "engine": ours.engine,
        "peer_docs_per_s": len(texts) / peer_seconds,
        "ours_docs_per_s": len(texts) / our_seconds,
        "peer_s": peer_seconds,
        "ours_s": our_seconds,
        "ratio": peer_seconds / our_seconds,
        "cosine_min": float(cosine.min()),
        "cosine_mean": float(cosine.mean()),
    }
    return figures, peer_vectors, our_vectors, ours, peer


def scifact_documents(limit: int | None = None) -> list[tuple[str, str]]:
    """SciFact's documents (id, text), or its first ``limit``."""
    return list(evaluation_collection("beir/scifact/test").iter_documents())[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=None, help="encode only the first N documents (no nDCG then)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--engine", default="auto", choices=INFERENCE_ENGINES, help="ours: as in `run`")
    args = parser.parse_args()

    collection = evaluation_collection("beir/scifact/test")
    docs = scifact_documents(args.docs)
    f, peer_vectors, our_vectors, ours, peer = compare(
        [text for _, text in docs], args.max_length, args.batch_size, args.precision, args.engine
    )
    print(f"documents: {f['documents']}, max length {f['max_length']}, batch size {f['batch_size']}")
    print(f"SBertBiEncoder fp32:      {f['peer_docs_per_s']:8.1f} docs/s ({f['peer_s']:.1f} s)")
    print(f"benchmark ({f['precision']}, {f['engine']}): {f['ours_docs_per_s']:8.1f} docs/s ({f['ours_s']:.1f} s)")
    print(f"ratio: {f['ratio']:.2f}x")
    print(f"cosine to fp32: min {f['cosine_min']:.5f}, mean {f['cosine_mean']:.5f}")

    if args.docs is None:
        topics, qrels = topics_and_qrels(collection, None)
        with tempfile.TemporaryDirectory() as folder:
            systems = {}
            for name, vectors in (("SBertBiEncoder fp32", peer_vectors), (f"benchmark {ours.precision}", our_vectors)):
                index = pyterrier_dr.FlexIndex(str(Path(folder) / name.replace(" ", "_")), verbose=False)
                index.index({"docno": d, "doc_vec": v} for (d, _), v in zip(docs, vectors, strict=True))
                query_side = peer.query_encoder() >> index.np_retriever() if name.startswith("SBert") else None
                systems[name] = query_side or retriever(ours, index)
            table = pt.Experiment(list(systems.values()), topics, qrels, MEASURES[:1], names=list(systems))
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
