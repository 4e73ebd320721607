"""The side-by-side comparisons as pytest-benchmark tests: each times both sides in one run (the timed round is
the whole comparison) and records the ratio and the raw figures in ``extra_info``, so ``--benchmark-autosave`` and
``--benchmark-compare`` track them. The scripts print the same figures from the same functions.

Sizes (environment variables; small defaults so the suite takes minutes on 2 cores):
BENCH_DOCS (documents encoded, default 300; 0: all 5,183), BENCH_STEPS (timed training steps, default 2),
BENCH_BATCH (training batch size, default 16), BENCH_MAX_LENGTH (tokens, default 256).
"""

from __future__ import annotations

import os

import encoding_throughput
import hardware_use
import training_throughput


def size(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def once(benchmark, function, *args):
    """One timed round of ``function`` (both sides of a comparison): its figures go into ``extra_info``."""
    result = benchmark.pedantic(function, args=args, rounds=1, iterations=1, warmup_rounds=0)
    figures = result[0] if isinstance(result, tuple) else result
    benchmark.extra_info.update(figures)
    return figures


def test_encoding_vs_pyterrier_dr_sbert(benchmark):
    docs = encoding_throughput.scifact_documents(size("BENCH_DOCS", 300) or None)
    figures = once(benchmark, encoding_throughput.compare, [text for _, text in docs], size("BENCH_MAX_LENGTH", 256))
    assert figures["ratio"] > 0
    assert figures["cosine_min"] > 0.99  # the speed is not bought with other embeddings


def test_margin_mse_training_vs_sentence_transformers_trainer(benchmark):
    figures = once(
        benchmark,
        training_throughput.compare,
        size("BENCH_STEPS", 2),
        size("BENCH_BATCH", 16),
        size("BENCH_MAX_LENGTH", 256),
    )
    assert figures["ours_triples_per_s"] > 0 and figures["peer_attention_dropout_0_triples_per_s"] > 0


def test_training_step_vs_matmul_peak(benchmark):
    figures = once(benchmark, hardware_use.measure, size("BENCH_BATCH", 16), size("BENCH_STEPS", 2))
    assert 0 < figures["ratio_to_bf16_peak"] < 1.5  # above the peak would mean the FLOPs are overcounted
