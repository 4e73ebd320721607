"""Self-distillation with adaptive relevance margins (Gienapp, Deckers, Potthast, Scells; ICTIR 2025).

No teacher and no batch sampling: the encoder's own similarity between the positive and the negative document
sets the margin it should keep between them. Semantics checked against the authors' code
(webis-de/adaptive-relevance-margin-loss, src/loss.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.common.errors import UsageError
from regimes.base import Parameter, Regime, TripleEmbeddings, parse_bool, register

Target = Literal["adaptive", "distributed"] | float
Error = Literal["l2", "l1", "soft"]
Pairing = Literal["anchored", "reference"]

CITATION = """@inproceedings{gienapp2025adaptive,
  title     = {Learning Effective Representations for Retrieval Using Self-Distillation with Adaptive
               Relevance Margins},
  author    = {Gienapp, Lukas and Deckers, Niklas and Potthast, Martin and Scells, Harrisen},
  booktitle = {Proceedings of ICTIR 2025},
  year      = {2025},
  note      = {arXiv:2407.21515}
}"""


def parse_target(text: str) -> Target:
    """``adaptive``, ``distributed`` or a float (the paper's static, parametrised margin)."""
    if text in ("adaptive", "distributed"):
        return text  # type: ignore[return-value]
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected adaptive, distributed or a number") from None
    if not math.isfinite(value):
        raise ValueError("a static target must be a finite number")
    return value


def parse_error(text: str) -> Error:
    if text not in ("l2", "l1", "soft"):
        raise ValueError("expected l2, l1 or soft")
    return text  # type: ignore[return-value]


def parse_pairing(text: str) -> Pairing:
    if text not in ("anchored", "reference"):
        raise ValueError("expected anchored or reference")
    return text  # type: ignore[return-value]


class AdaptiveMarginLoss(nn.Module):
    """The paper's loss: error(margin - target), averaged.

    margin = sim(q, d+) - sim(q, d-); target = sim(d+, d-) / 2 + 1/2 (``adaptive``), a constant (static), or
    ``distributed``: each triple's margin against the targets of its negative paired with every positive of the
    batch. With ``in_batch`` the negatives of the other triples in the batch are negatives too, against the
    target sim(d+_i, d-_j) / 2 + 1/2 of entry (i, j), and ``pairing`` says which margin entry (i, j) gets:
    ``anchored`` (default) sim(q_i, d+_i) - sim(q_i, d-_j), each row anchored on its own query;
    ``reference`` sim(q_j, d+_j) - sim(q_i, d-_j), the authors' broadcast (src/loss.py: ``pos.diag() - neg``),
    which pairs triple j's positive score with query i's negative score and triple i's target; their published
    in-batch runs (configs/exp4/*-with.yaml) trained with it. As in the reference code, the in-batch negatives are
    the other triples' negatives, not their positives. Errors: ``l2`` squared, ``l1`` absolute, ``soft``
    log(1 + exp(-x)).

    Gradient through the target: the reference code does not detach the target, so the encoder is also pushed
    to move d+ and d- apart or together; the paper's numbers come from that code, so we keep the gradient by
    default (``detach_target=False``) and offer detaching, which treats the target as a fixed teacher signal.
    """

    def __init__(
        self,
        target: Target = "adaptive",
        in_batch: bool = True,
        error: Error = "l2",
        detach_target: bool = False,
        pairing: Pairing = "anchored",
    ) -> None:
        super().__init__()
        if isinstance(target, int | float) and not isinstance(target, bool):
            target = float(target)
        elif target not in ("adaptive", "distributed"):
            raise ValueError(f"target must be adaptive, distributed or a number, not {target!r}")
        if error not in ("l2", "l1", "soft"):
            raise ValueError(f"error must be l2, l1 or soft, not {error!r}")
        if in_batch and target == "distributed":
            raise ValueError("target=distributed cannot be combined with in_batch=true")
        if pairing not in ("anchored", "reference"):
            raise ValueError(f"pairing must be anchored or reference, not {pairing!r}")
        if pairing == "reference" and not in_batch:
            raise ValueError("pairing=reference pairs in-batch negatives; it needs in_batch=true")
        self.pairing = pairing
        self.target = target
        self.in_batch = in_batch
        self.error = error
        self.detach_target = detach_target

    def error_of(self, residual: torch.Tensor) -> torch.Tensor:
        if self.error == "l2":
            return residual.square()
        if self.error == "l1":
            return residual.abs()
        return F.softplus(-residual)  # log(1 + exp(-x)), computed stably

    def forward(self, embeddings: TripleEmbeddings) -> torch.Tensor:
        sim = embeddings.similarity
        q, pos, neg = embeddings.queries, embeddings.positives, embeddings.negatives
        positive_scores = torch.diagonal(sim(q, pos))
        if self.in_batch:  # the other triples' negatives: those of every process
            if self.pairing == "reference":  # entry (i, j): sim(q_j, d+_j) - sim(q_i, d-_j)
                if q.shape[0] != embeddings.batch_size:
                    raise ValueError("pairing=reference needs the whole batch's queries in one process")
                margin = positive_scores[None, :] - sim(q, embeddings.all_negatives)
            else:  # entry (i, j): sim(q_i, d+_i) - sim(q_i, d-_j), row i anchored on q_i
                margin = positive_scores[:, None] - sim(q, embeddings.all_negatives)
            doc_similarity = sim(pos, embeddings.all_negatives)  # entry (i, j): sim(d+_i, d-_j)
        elif self.target == "distributed":
            margin = (positive_scores - torch.diagonal(sim(q, neg)))[None, :]  # (1, B), broadcast over rows
            doc_similarity = sim(embeddings.all_positives, neg)  # entry (i, j): sim(d+_i, d-_j), triple j's targets
        else:
            margin = positive_scores - torch.diagonal(sim(q, neg))
            doc_similarity = torch.diagonal(sim(pos, neg))
        if isinstance(self.target, float):
            target: torch.Tensor | float = self.target
        else:
            target = doc_similarity / 2 + 0.5
            if self.detach_target:
                target = target.detach()
        return self.error_of(margin - target).mean()


@register
class SelfDistillation(Regime):
    """Teacher-free: the encoder's own document similarity sets each triple's margin."""

    name = "self-distillation"
    description = "Self-distillation with adaptive relevance margins (Gienapp et al., ICTIR 2025)"
    citation = CITATION
    parameters = (
        Parameter("target", "adaptive", "adaptive | distributed | <float> (static margin)", parse_target),
        Parameter("in_batch", True, "use the other triples' negatives of the batch too", parse_bool),
        Parameter("error", "l2", "l2 | l1 | soft", parse_error),
        Parameter("detach_target", False, "stop the gradient through the target", parse_bool),
        Parameter(
            "pairing",
            "anchored",
            "in_batch: anchored (sim(q_i,d+_i) - sim(q_i,d-_j)) | reference (the authors' sim(q_j,d+_j) - ...)",
            parse_pairing,
        ),
    )

    def validate(self) -> None:
        if self.settings["in_batch"] and self.settings["target"] == "distributed":
            raise UsageError(
                "regime self-distillation: target=distributed cannot be combined with in_batch=true; add in_batch=false"
            )
        if self.settings["pairing"] == "reference":
            from benchmark.training.distributed import (
                launched_processes,  # here: benchmark.training.distributed imports regimes
            )

            if not self.settings["in_batch"]:
                raise UsageError("regime self-distillation: pairing=reference needs in_batch=true; drop pairing")
            if launched_processes() > 1:
                raise UsageError(
                    "regime self-distillation: pairing=reference needs every process's query-positive scores; "
                    "train it in one process or use pairing=anchored"
                )
        try:
            self.criterion = AdaptiveMarginLoss(**self.settings)
        except ValueError as error:
            raise UsageError(f"regime self-distillation: {error}; see `python -m benchmark list`") from None

    def loss(self, embeddings: TripleEmbeddings, batch: Sequence) -> torch.Tensor:
        return self.criterion(embeddings)
