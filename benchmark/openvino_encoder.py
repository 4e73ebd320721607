"""Inference embeddings through OpenVINO, the inference engine made for CPUs, from the encoder's current weights.

On a 2-core AVX-512 BF16 CPU OpenVINO (bf16) encodes SciFact's documents about 1.4x as fast as PyTorch with bf16
weights, and closer to fp32 (cosine to fp32 >= 0.99997, PyTorch bf16 >= 0.9999): benchmarks/encoding_throughput.py.
Converting a MiniLM-sized model takes about 2 s, so a model is converted once per state of its weights and reused
until they change (a training step or a restored checkpoint bumps the parameters' version counters).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers.utils import logging as transformers_logging

if TYPE_CHECKING:
    from benchmark.encoder import BiEncoder

TOKENS_PER_BATCH = 2048  # 8 sequences of 256 tokens, 64 of 32: small batches keep both streams busy
PRECISION_HINTS = {"bf16": "bf16", "fp32": "f32"}  # the encoder's precision -> OpenVINO's inference precision


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def import_openvino():
    """OpenVINO, imported as if openvino-telemetry were not installed (its own fallback: a stub that sends nothing).

    OpenVINO's model converter sends usage events to Google Analytics by default, from ``import openvino`` on; a
    benchmark run sends nothing anywhere that its user did not ask for."""
    if "openvino" not in sys.modules:
        blocked = "openvino_telemetry" not in sys.modules
        if blocked:
            sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # import raises ImportError
        try:
            import openvino  # noqa: F401
        finally:
            if blocked:
                del sys.modules["openvino_telemetry"]
    return sys.modules["openvino"]


class Embedder(nn.Module):
    """The encoder's forward pass as OpenVINO traces it: token ids and mask in, pooled (normalised) embeddings out."""

    def __init__(self, encoder: BiEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        output = self.encoder.model(input_ids=input_ids, attention_mask=attention_mask)
        pooled = self.encoder.pool(output, attention_mask).float()
        return F.normalize(pooled, dim=-1) if self.encoder.config.similarity == "cosine" else pooled


@contextlib.contextmanager
def quiet_transformers():
    """transformers logs notes about its config while it is traced; they say nothing about the conversion."""
    logger = transformers_logging.get_logger("transformers")
    level = logger.level
    logger.setLevel(transformers_logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def weights_version(model: nn.Module) -> tuple:
    """Changes whenever a parameter is changed in place (optimizer steps, ``load_state_dict``) or replaced."""
    return tuple((id(p), p._version) for p in model.parameters())


class OpenVINOEncoder:
    """An OpenVINO model compiled from a BiEncoder, rebuilt when the BiEncoder's weights have changed."""

    def __init__(self, encoder: BiEncoder) -> None:
        self.encoder = encoder
        self._compiled = None
        self._version: tuple = ()

    def __deepcopy__(self, memo: dict) -> OpenVINOEncoder:
        """A copy of the encoder compiles its own model (a compiled OpenVINO model cannot be copied)."""
        return OpenVINOEncoder(copy.deepcopy(self.encoder, memo))

    def __getstate__(self) -> dict:
        return {"encoder": self.encoder, "_compiled": None, "_version": ()}

    def compiled(self):
        version = weights_version(self.encoder.model)
        if self._compiled is None or version != self._version:
            self._compiled = self._compile()
            self._version = version
        return self._compiled

    def _compile(self):
        ov = import_openvino()
        tokenizer = self.encoder.tokenizer
        special = [t for t in (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id) if t is not None]
        token = special[0] if special else 0
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # a padded example, so that the traced graph keeps the attention mask's path
        example = {
            "input_ids": torch.tensor([[token] * 4, [token, token, pad, pad]]),
            "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]),
        }
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            with torch.no_grad(), warnings.catch_warnings(), quiet_transformers():
                warnings.simplefilter("ignore")  # the tracer's notes on constants (the mask's path is traced)
                model = ov.convert_model(Embedder(self.encoder), example_input=example)
        finally:
            self.encoder.train(was_training)
        model.reshape({"input_ids": [-1, -1], "attention_mask": [-1, -1]})
        settings = {
            "INFERENCE_PRECISION_HINT": PRECISION_HINTS[self.encoder.precision],
            # batches in parallel streams (one per core on 2 cores): about 10% more documents a second than one
            # stream using every core, whose threads wait for each other at each of the many small operations
            "PERFORMANCE_HINT": "THROUGHPUT",
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),  # several training processes share the cores
        }
        return ov.Core().compile_model(model, "CPU", settings)

    def encode(
        self, token_ids: list[list[int]], order: np.ndarray, out: np.ndarray, progress: Callable[[int], None] | None
    ) -> None:
        """Embed every sequence into ``out`` (row i for ``token_ids[i]``), in batches of ``order``'s consecutive
        sequences (longest first) of at most TOKENS_PER_BATCH padded tokens, as many at a time as the streams."""
        if not token_ids:  # nothing to embed: no conversion of the weights either
            return
        ov = import_openvino()
        compiled = self.compiled()
        queue = ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        done: list[int] = []

        def finished(request, rows: np.ndarray) -> None:
            out[rows] = request.get_output_tensor(0).data
            done.append(len(rows))

        queue.set_callback(finished)
        reported = 0
        for rows in token_batches([len(token_ids[i]) for i in order], TOKENS_PER_BATCH):
            chosen = order[rows]
            batch = self.encoder.tokenizer.pad({"input_ids": [token_ids[i] for i in chosen]}, return_tensors="np")
            queue.start_async({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}, chosen)
            reported = report(progress, done, reported)
        queue.wait_all()
        report(progress, done, reported)


def token_batches(lengths: list[int], budget: int) -> list[slice]:
    """Consecutive batches of sequences sorted longest first, each at most ``budget`` padded tokens (its first
    sequence's length times its size), and at least one sequence."""
    batches, start = [], 0
    while start < len(lengths):
        size = max(1, budget // max(1, lengths[start]))
        batches.append(slice(start, min(start + size, len(lengths))))
        start += size
    return batches


def report(progress: Callable[[int], None] | None, done: list[int], reported: int) -> int:
    """Tell ``progress`` about the sequences finished since the last report (from the main thread)."""
    finished = len(done)
    if progress is not None:
        for count in done[reported:finished]:
            progress(count)
    return finished
