"""Hardware use of a training step: achieved FLOP/s of one self-distillation step against this machine's bf16
matrix-multiply peak, both measured in this script.

The step's FLOPs come from the model's shape and the real token counts of the batch (benchmarks/flops.py:
forward and backward, padding not counted). The peak is the best of a few large bf16 (and fp32) matrix products.

    python benchmarks/hardware_use.py [--batch-size 32] [--dropout 0] [--attention-dropout model]
"""

from __future__ import annotations

import argparse
import time

import torch
from flops import BACKWARD_FACTOR, EncoderShape, matmul_peak

from benchmark.data.collections import training_collection
from benchmark.encoder import BiEncoder, EncoderConfig
from benchmark.run.cli import probability_or_model
from regimes.base import TripleEmbeddings
from regimes.self_distillation import AdaptiveMarginLoss


def step_flops(encoder: BiEncoder, batches: list[dict[str, torch.Tensor]]) -> float:
    """Forward and backward FLOPs of one step over these tokenised batches (real tokens only)."""
    shape = EncoderShape.of(encoder.model)
    lengths = [n for batch in batches for n in batch["attention_mask"].sum(1).tolist()]
    return (1 + BACKWARD_FACTOR) * shape.sequences_flops(lengths)


def measure(
    batch_size: int = 32, steps: int = 3, dropout: float | None = None, attention_dropout: float | None = 0.0
) -> dict:
    """A self-distillation step's achieved FLOP/s and this machine's bf16 and fp32 matmul peaks, in one process."""
    collection = training_collection("beir/scifact")
    queries = list(collection.queries.items())[:batch_size]
    doc_ids = [doc for qid, _ in queries for doc in list(collection.qrels[qid])[:1]]
    docs = collection.document_texts(doc_ids)
    negatives = docs[1:] + docs[:1]  # another query's positive: a stand-in negative, same lengths
    encoder = BiEncoder(EncoderConfig(dropout=dropout, attention_dropout=attention_dropout))
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
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - started) / steps
    flops = step_flops(encoder, batches)
    peak_bf16, peak_fp32 = matmul_peak(torch.bfloat16), matmul_peak(torch.float32)
    return {
        "batch_size": batch_size,
        "attention_dropout": encoder.model.config.attention_probs_dropout_prob,
        "precision": encoder.precision,
        "step_gflop": flops / 1e9,
        "step_s": seconds,
        "achieved_gflops": flops / seconds / 1e9,
        "peak_bf16_gflops": peak_bf16 / 1e9,
        "peak_fp32_gflops": peak_fp32 / 1e9,
        "ratio_to_bf16_peak": flops / seconds / peak_bf16,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--dropout", type=float, default=None, help="hidden-state dropout (default: the model's)")
    parser.add_argument(
        "--attention-dropout", type=probability_or_model, default=0.0, help="as in `run` (default 0; 'model')"
    )
    args = parser.parse_args()
    m = measure(args.batch_size, args.steps, args.dropout, args.attention_dropout)
    lines = [
        f"attention dropout {m['attention_dropout']}, batch size {m['batch_size']}",
        f"step: {m['step_gflop']:.1f} GFLOP in {m['step_s']:.2f} s = {m['achieved_gflops']:.0f} GFLOP/s "
        f"({m['precision']})",
        f"peak matmul: bf16 {m['peak_bf16_gflops']:.0f} GFLOP/s, fp32 {m['peak_fp32_gflops']:.0f} GFLOP/s",
        f"ratio to the bf16 peak: {m['ratio_to_bf16_peak']:.2f}",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
