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

from benchmark.errors import UsageError
from regimes.base import Parameter, Regime, TripleEmbeddings, parse_bool, register

Target = Literal["adaptive", "distributed"] | float
Error = Literal["l2", "l1", "soft"]

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


class AdaptiveMarginLoss(nn.Module):
    """The paper's loss: error(margin - target), averaged.

    margin = sim(q, d+) - sim(q, d-); target = sim(d+, d-) / 2 + 1/2 (``adaptive``), a constant (static), or
    ``distributed``: each triple's margin against the targets of its negative paired with every positive of the
    batch. With ``in_batch`` the negatives of the other triples in the batch are negatives too: entry (i, j) is
    sim(q_i, d+_i) - sim(q_i, d-_j) against sim(d+_i, d-_j) / 2 + 1/2. (The reference code broadcasts
    sim(q_j, d+_j) there, which pairs a margin with another triple's target; we keep each row anchored on its
    own query.) As in the reference code, the in-batch negatives are the other triples' negatives, not their
    positives. Errors: ``l2`` squared, ``l1`` absolute, ``soft`` log(1 + exp(-x)).

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
            margin = positive_scores[:, None] - sim(q, embeddings.all_negatives)  # (B, B): row i anchored on q_i
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
    )

    def validate(self) -> None:
        if self.settings["in_batch"] and self.settings["target"] == "distributed":
            raise UsageError(
                "regime self-distillation: target=distributed cannot be combined with in_batch=true; add in_batch=false"
            )
        try:
            self.criterion = AdaptiveMarginLoss(**self.settings)
        except ValueError as error:
            raise UsageError(f"regime self-distillation: {error}; see `python -m benchmark list`") from None

    def loss(self, embeddings: TripleEmbeddings, batch: Sequence) -> torch.Tensor:
        return self.criterion(embeddings)
