"""The GPU side of benchmarks/gpu_check.sh: the accelerator's own matmul peaks and this project's rates on it.

Measured in one process: the best bf16 and fp32 matrix-product FLOP/s of the GPU (large products, synchronised),
corpus encoding of SciFact in documents per second, and whether codecarbon reads the GPU's energy through NVML.
Training triples per second and the main command's wall-clock come from the runs the shell script starts.

    python benchmarks/gpu_check.py [--docs 5183]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from benchmark.data.collections import evaluation_collection
from benchmark.encoder import BiEncoder, EncoderConfig

SHAPES = [(8192, 8192, 8192), (16384, 1536, 384), (16384, 384, 1536), (16384, 4096, 1024)]  # (m, n, k)


def matmul_peak(dtype: torch.dtype, device: torch.device, repeats: int = 10) -> float:
    """The best FLOP/s of a few large products on ``device``, timed between device synchronisations."""
    best = 0.0
    for m, n, k in SHAPES:
        a, b = torch.randn(m, k, dtype=dtype, device=device), torch.randn(k, n, dtype=dtype, device=device)
        a @ b
        torch.cuda.synchronize(device)
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            torch.cuda.synchronize(device)
            best = max(best, 2 * m * n * k / (time.perf_counter() - started))
    return best


def codecarbon_gpu() -> str:
    """What codecarbon found to measure: NVML means the GPU's energy is read from its counters, not estimated."""
    from codecarbon import OfflineEmissionsTracker

    tracker = OfflineEmissionsTracker(country_iso_code="USA", save_to_file=False, log_level="error")
    tracker.start()
    hardware = [type(h).__name__ for h in getattr(tracker, "_hardware", [])]
    tracker.stop()
    return "measured through NVML" if "GPU" in hardware else f"not measured (codecarbon found only {hardware})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=None, help="encode only the first N SciFact documents")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: needs a CUDA GPU (torch.cuda.is_available() is False here); nothing was measured")
        return 0
    device = torch.device("cuda")
    print(f"GPU: {torch.cuda.get_device_name(device)} x {torch.cuda.device_count()}, torch {torch.__version__}")
    peaks = {name: matmul_peak(dtype, device) for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32))}
    for name, rate in peaks.items():
        print(f"matmul peak {name}: {rate / 1e12:.1f} TFLOP/s")
    docs = list(evaluation_collection("beir/scifact/test").iter_documents())[: args.docs]
    encoder = BiEncoder(EncoderConfig(device="cuda", precision="auto")).for_inference()
    encoder.encode([text for _, text in docs[:256]], "doc")  # warm-up: kernels, allocator
    torch.cuda.synchronize(device)
    started = time.perf_counter()
    encoder.encode([text for _, text in docs], "doc")
    torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    rate = len(docs) / seconds
    print(f"corpus encoding ({encoder.precision}): {rate:.0f} docs/s ({len(docs)} docs, {seconds:.1f} s)")
    print(f"codecarbon GPU energy: {codecarbon_gpu()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
