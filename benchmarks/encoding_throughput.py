"""Corpus encoding throughput: this project's encoder against pyterrier-dr's SBertBiEncoder (fp32), side by side.

Same model (all-MiniLM-L6-v2), same documents (SciFact, or its first --docs), same max length and batch size.
Prints documents per second of each side, their ratio, the cosine between the two embeddings of each document,
and (with the whole corpus) nDCG@10 of both on beir/scifact/test through pt.Experiment.

    python benchmarks/encoding_throughput.py [--docs 1000] [--precision auto]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyterrier as pt
import pyterrier_dr

from benchmark.data import evaluation_collection
from benchmark.encoder import DEFAULT_MODEL, BiEncoder, EncoderConfig, resolve_model
from benchmark.evaluation import MEASURES, retriever, topics_and_qrels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=None, help="encode only the first N documents (no nDCG then)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    collection = evaluation_collection("beir/scifact/test")
    docs = list(collection.iter_documents())[: args.docs]
    texts = [text for _, text in docs]

    peer = pyterrier_dr.SBertBiEncoder(resolve_model(DEFAULT_MODEL), batch_size=args.batch_size, device="cpu")
    peer.model.max_seq_length = args.max_length
    # The evaluation path: a trained encoder is indexed with its weights in the inference precision.
    ours = BiEncoder(EncoderConfig(max_doc_length=args.max_length, precision=args.precision, device="cpu"))
    ours.for_inference()

    peer.encode_docs(texts[:16])  # warm up both sides
    ours.encode(texts[:16], "doc", args.batch_size)
    started = time.perf_counter()
    peer_vectors = peer.encode_docs(texts)
    peer_seconds = time.perf_counter() - started
    started = time.perf_counter()
    our_vectors = ours.encode(texts, "doc", args.batch_size)
    our_seconds = time.perf_counter() - started

    cosine = (peer_vectors * our_vectors).sum(1) / (
        np.linalg.norm(peer_vectors, axis=1) * np.linalg.norm(our_vectors, axis=1)
    )
    print(f"documents: {len(texts)}, max length {args.max_length}, batch size {args.batch_size}")
    print(f"SBertBiEncoder fp32:      {len(texts) / peer_seconds:8.1f} docs/s ({peer_seconds:.1f} s)")
    print(f"benchmark ({ours.precision}):         {len(texts) / our_seconds:8.1f} docs/s ({our_seconds:.1f} s)")
    print(f"ratio: {peer_seconds / our_seconds:.2f}x")
    print(f"cosine to fp32: min {cosine.min():.5f}, mean {cosine.mean():.5f}")

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
