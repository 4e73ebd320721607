"""Hardware use of a training step: achieved FLOP/s of one self-distillation step against this machine's bf16
matrix-multiply peak, both measured in this script.

The step's FLOPs come from the model's shape and the real token counts of the batch: per sequence of n tokens,
each layer does 2 x n x (4 h^2 + 2 h f) multiply-adds for its projections and feed-forward and 2 x 2 x n^2 x h for
attention scores and their weighted sum; backward costs twice the forward. The peak is the best of a few large
bf16 (and fp32) matrix products.

    python benchmarks/hardware_use.py [--batch-size 32] [--dropout 0] [--attention-dropout model]
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmark.cli import probability_or_model
from benchmark.data import training_collection
from benchmark.encoder import BiEncoder, EncoderConfig
from regimes.base import TripleEmbeddings
from regimes.self_distillation import AdaptiveMarginLoss

PEAK_SHAPES = [(4096, 4096, 4096), (8192, 1536, 384), (8192, 384, 1536), (8192, 1024, 1024)]  # (m, n, k)


def matmul_peak(dtype: torch.dtype, repeats: int = 5) -> float:
    """The best FLOP/s of a few large matrix products (square, and shaped like a transformer's layers)."""
    best_rate = 0.0
    for m, n, k in PEAK_SHAPES:
        a = torch.randn(m, k, dtype=dtype)
        b = torch.randn(k, n, dtype=dtype)
        a @ b
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            best_rate = max(best_rate, 2 * m * n * k / (time.perf_counter() - started))
    return best_rate


def step_flops(encoder: BiEncoder, batches: list[dict[str, torch.Tensor]]) -> float:
    config = encoder.model.config
    h, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0.0
    for batch in batches:
        for length in batch["attention_mask"].sum(1).tolist():  # real tokens; padding is not useful work
            total += layers * (2 * length * (4 * h * h + 2 * h * f) + 4 * length * length * h)
    return 3 * total  # forward + backward (twice the forward)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--dropout", type=float, default=None, help="hidden-state dropout (default: the model's)")
    parser.add_argument(
        "--attention-dropout", type=probability_or_model, default=0.0, help="as in `run` (default 0; 'model')"
    )
    args = parser.parse_args()

    collection = training_collection("beir/scifact")
    queries = list(collection.queries.items())[: args.batch_size]
    doc_ids = [doc for qid, _ in queries for doc in list(collection.qrels[qid])[:1]]
    docs = collection.document_texts(doc_ids)
    negatives = docs[1:] + docs[:1]  # another query's positive: a stand-in negative, same lengths
    encoder = BiEncoder(EncoderConfig(dropout=args.dropout, attention_dropout=args.attention_dropout))
    encoder.train()
    loss_fn = AdaptiveMarginLoss()
    optimizer = torch.optim.AdamW(encoder.model.parameters(), lr=2e-5)
    batches = [
        encoder.tokenize([q for _, q in queries], encoder.config.max_query_length),
        encoder.tokenize(docs, encoder.config.max_doc_length),
        encoder.tokenize(negatives, encoder.config.max_doc_length),
    ]

    def step() -> None:
        q, p, n = (encoder.embed_tokens(b) for b in batches)
        loss_fn(TripleEmbeddings(q, p, n, encoder.similarity)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - started) / args.steps
    flops = step_flops(encoder, batches)
    peak_bf16, peak_fp32 = matmul_peak(torch.bfloat16), matmul_peak(torch.float32)
    achieved = flops / seconds
    print(f"attention dropout {encoder.model.config.attention_probs_dropout_prob}, batch size {args.batch_size}")
    print(f"step: {flops / 1e9:.1f} GFLOP in {seconds:.2f} s = {achieved / 1e9:.0f} GFLOP/s ({encoder.precision})")
    print(f"peak matmul: bf16 {peak_bf16 / 1e9:.0f} GFLOP/s, fp32 {peak_fp32 / 1e9:.0f} GFLOP/s")
    print(f"ratio to the bf16 peak: {achieved / peak_bf16:.2f}")


if __name__ == "__main__":
    main()
