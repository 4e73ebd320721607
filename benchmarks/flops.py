"""FLOPs of a BERT-style encoder from its shape, and this machine's matrix-multiply peak, measured here.

Shared by the scripts that put a measured time next to the compute it needed (hardware_use.py, compute_floor.py).
Per sequence of n real tokens, each of L layers does 4 n h^2 multiply-adds in its query, key, value and output
projections, 2 n h f in its feed-forward, and 2 n^2 h for attention scores and their weighted sum (the head count
splits that work, it does not change it); a pooler adds h^2. A FLOP is half a multiply-add. Backward costs twice
the forward (gradients of activations and of weights). Padding is not counted: it is not useful work.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch

PEAK_SHAPES = [(4096, 4096, 4096), (8192, 1536, 384), (8192, 384, 1536), (8192, 1024, 1024)]  # (m, n, k)
BACKWARD_FACTOR = 2.0  # backward FLOPs per forward FLOP


@dataclass(frozen=True)
class EncoderShape:
    """What the FLOPs of a forward pass depend on (read from a Hugging Face config)."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    pooler: bool = True

    @classmethod
    def of(cls, model) -> EncoderShape:
        """The shape of a loaded transformers model (its config, and whether it has a pooler)."""
        config = model.config
        return cls(
            layers=config.num_hidden_layers,
            hidden=config.hidden_size,
            intermediate=config.intermediate_size,
            heads=config.num_attention_heads,
            pooler=getattr(model, "pooler", None) is not None,
        )

    def forward_flops(self, length: int) -> float:
        """FLOPs of one forward pass over a sequence of ``length`` real tokens."""
        h, f, n = self.hidden, self.intermediate, length
        per_layer = 2 * n * (4 * h * h + 2 * h * f) + 4 * n * n * h
        return float(self.layers * per_layer + (2 * h * h if self.pooler else 0))

    def sequences_flops(self, lengths: Iterable[int]) -> float:
        """FLOPs of forward passes over sequences of these real lengths."""
        return sum(self.forward_flops(n) for n in lengths)

    def padded_flops(self, batches: Iterable[list[int]]) -> float:
        """FLOPs of forward passes as run: every sequence of a batch padded to the batch's longest."""
        return sum(len(lengths) * self.forward_flops(max(lengths)) for lengths in batches if lengths)


def matmul_peak(dtype: torch.dtype, repeats: int = 5) -> float:
    """The best FLOP/s of a few large CPU matrix products (square, and shaped like a transformer's layers)."""
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
