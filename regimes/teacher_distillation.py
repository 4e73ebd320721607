"""Teacher distillation with Margin-MSE (Hofstätter et al., 2020, arXiv 2010.02666).

The student learns the teacher's margin between the positive and the negative of each triple, times
``teacher_scale`` (regimes.teacher_scale: ``auto`` fits it once on the full training triples). Scoring with the
teacher is this regime's preparation and is charged to it; scores are cached on disk, and a run that reuses them
is still charged the measured cost of the original scoring (marked as reused).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark.common.errors import UsageError
from benchmark.common.progress import say
from benchmark.data.pairs import Pairs, PairScores, scores_of
from benchmark.data.triples import Triple, TripleStore
from regimes.base import Parameter, Regime, TripleEmbeddings, register
from regimes.teacher_scale import fitted_teacher_scale, parse_teacher_scale, teacher_margin_values
from regimes.teachers import (
    DEFAULT_TEACHER,
    EnsembleTeacher,
    PairKey,
    Teacher,
    has_score_file,
    parse_teacher,
    teacher_scores,
)

CITATION = """@article{hofstaetter2020margin,
  title   = {Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge Distillation},
  author  = {Hofst{\\"a}tter, Sebastian and Althammer, Sophia and Schr{\\"o}der, Michael and Sertkan, Mete and
             Hanbury, Allan},
  journal = {arXiv:2010.02666},
  year    = {2020}
}"""


class MarginMSELoss(nn.Module):
    """MSE between student margins sim(q,d+) - sim(q,d-) and teacher margins t(q,d+) - t(q,d-).

    With ``in_batch_weight`` > 0 a second term (TAS-B's dual supervision, Hofstätter et al. SIGIR 2021) applies
    Margin-MSE to every other document of the batch (the other triples' positives and negatives) as a negative
    of query i: sim(q_i,d+_i) - sim(q_i,d_j) against t(q_i,d+_i) - t(q_i,d_j).
    """

    def __init__(self, in_batch_weight: float = 0.0) -> None:
        super().__init__()
        self.in_batch_weight = in_batch_weight

    def forward(
        self,
        embeddings: TripleEmbeddings,
        teacher_margins: torch.Tensor,
        teacher_in_batch_margins: torch.Tensor | None = None,
    ) -> torch.Tensor:
        sim = embeddings.similarity
        q, pos, neg = embeddings.queries, embeddings.positives, embeddings.negatives
        positive_scores = torch.diagonal(sim(q, pos))
        student_margins = positive_scores - torch.diagonal(sim(q, neg))
        loss = torch.mean((student_margins - teacher_margins) ** 2)
        if self.in_batch_weight > 0:
            if teacher_in_batch_margins is None:
                raise ValueError("the in-batch term needs teacher margins for every in-batch pair")
            # (2B, dim): every process's positives, then every process's negatives
            docs = torch.cat([embeddings.all_positives, embeddings.all_negatives])
            student_in_batch = positive_scores[:, None] - sim(q, docs)  # (local rows, 2B)
            batch, rows = embeddings.batch_size, torch.arange(q.shape[0])
            own = torch.zeros_like(student_in_batch, dtype=torch.bool)
            own[rows, rows + embeddings.offset] = True  # d+_i is not its own negative
            own[rows, rows + embeddings.offset + batch] = True  # d-_i is covered by the pair term
            error = (student_in_batch - teacher_in_batch_margins) ** 2
            if batch > 1:  # a batch of one triple has no other document
                loss = loss + self.in_batch_weight * error[~own].mean()
        return loss


def teacher_margins(
    pair_scores: Mapping[PairKey, float],
    batch: Sequence[Triple],
    device: torch.device,
    in_batch: bool,
    rows: slice = slice(None),
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The teacher's margins t(q,d+) - t(q,d-) of the batch's ``rows`` and, for the in-batch term,
    t(q_i,d+_i) - t(q_i,d_j) for every document d_j of the whole batch (columns: the positives, then the
    negatives); all multiplied by ``scale``."""
    local = list(batch[rows])
    queries = [t.query_id for t in local]

    def scaled(query_ids: list[str], doc_ids: list[str]) -> torch.Tensor:
        values = scores_of(pair_scores, query_ids, doc_ids)
        if np.isnan(values).any():
            first = int(np.flatnonzero(np.isnan(values))[0])
            raise KeyError((query_ids[first], doc_ids[first]))
        values = scale * values if scale != 1.0 else values  # float64, as the teacher's scores are kept
        return torch.tensor(values, dtype=torch.get_default_dtype(), device=device)

    positives = scaled(queries, [t.positive_id for t in local])
    negatives = scaled(queries, [t.negative_id for t in local])
    others = None
    if in_batch:
        docs = [t.positive_id for t in batch] + [t.negative_id for t in batch]
        table = scaled([q for q in queries for _ in docs], docs * len(local)).reshape(len(local), len(docs))
        others = positives[:, None] - table
    return positives - negatives, others


def margin_mse_on_teacher(
    criterion: MarginMSELoss,
    pair_scores: Mapping[PairKey, float],
    scale: float,
    in_batch_weight: float,
    embeddings: TripleEmbeddings,
    batch: Sequence[Triple],
) -> torch.Tensor:
    """Margin-MSE of the batch against the teacher's scaled margins (and their in-batch term when weighted): the
    loss teacher-distillation and TAS-Balanced share."""
    margins, in_batch = teacher_margins(
        pair_scores, batch, embeddings.queries.device, in_batch_weight > 0, embeddings.rows, scale
    )
    return criterion(embeddings, margins, in_batch)


def scaled_teacher_scores(
    teacher: Teacher, pairs: Sequence[PairKey], context, teacher_scale: float | str
) -> tuple[PairScores, float]:
    """The teacher's budget-independent scores of ``pairs`` and the factor on its margins: ``teacher_scale`` as
    given, or fitted on the full training triples (``auto``, which scores all of them; charged to the regime)."""
    auto = teacher_scale == "auto"
    if (auto or isinstance(teacher, EnsembleTeacher)) and not context.training_triples:
        raise RuntimeError("teacher_scale=auto and ensemble teachers need the context's training_triples")
    scores = teacher_scores(teacher, pairs, context, calibrate=auto)
    scale = fitted_teacher_scale(scores, context) if auto else float(teacher_scale)
    return scores, scale


@register
class TeacherDistillation(Regime):
    """Margin-MSE against a pluggable teacher; the teacher's scoring is charged to this regime."""

    name = "teacher-distillation"
    description = "Margin-MSE distillation from a teacher (Hofstätter et al., 2020)"
    citation = CITATION
    parameters = (
        Parameter(
            "teacher", DEFAULT_TEACHER, "cross-encoder:<id> | bi-encoder:<id> | scores:<path> | bm25 | ensemble:a+b"
        ),
        Parameter("in_batch_weight", 0.0, "weight of TAS-B's in-batch Margin-MSE term (0: off)", float),
        Parameter(
            "teacher_scale",
            "auto",
            "factor on the teacher's margins (auto: RMS of the initial encoder's over the teacher's, on all training "
            "triples)",
            parse_teacher_scale,
        ),
    )

    def validate(self) -> None:
        self.teacher: Teacher = parse_teacher(self.settings["teacher"])
        if self.settings["in_batch_weight"] < 0:
            raise UsageError("regime teacher-distillation: in_batch_weight must be >= 0")
        if self.settings["in_batch_weight"] > 0 and has_score_file(self.teacher):
            raise UsageError(
                "regime teacher-distillation: a score file has no scores for in-batch pairs; set in_batch_weight=0"
            )
        self.criterion = MarginMSELoss(self.settings["in_batch_weight"])
        self.pair_scores: Mapping[PairKey, float] = PairScores.empty()
        self.scale = 1.0
        self.kept: Sequence[Triple] | None = None
        self.loaded = False

    # --- preparation: teacher scoring -------------------------------------------------------------------
    def pairs_needed(self, triples: Sequence[Triple], batch_size: int) -> Pairs:
        """Each triple's two pairs and, with the in-batch term, every (query, in-batch document) pair; sorted."""
        pairs = Pairs.of_triples(triples)
        if self.settings["in_batch_weight"] > 0:

            def in_batch() -> Iterator[PairKey]:
                for batch in super(TeacherDistillation, self).batches(triples, batch_size, 0):
                    docs = [t.positive_id for t in batch] + [t.negative_id for t in batch]
                    yield from ((t.query_id, d) for t in batch for d in docs)

            pairs = pairs.union(Pairs.from_keys(in_batch()))
        return pairs

    def check(self, encoder_config) -> None:
        self.teacher.load(encoder_config)
        self.loaded = True

    def prepare(self, context) -> None:
        if not self.loaded:
            self.check(context.encoder_config)
        pairs = self.pairs_needed(context.triples, context.batch_size)
        self.pair_scores, self.scale = scaled_teacher_scores(
            self.teacher, pairs, context, self.settings["teacher_scale"]
        )
        self.kept = self.scored_triples(context.triples)
        dropped = len(context.triples) - len(self.kept)
        self.notes["teacher"] = self.teacher.spec
        self.notes["teacher_scale"] = self.scale
        self.notes["teacher_unscored_triples_dropped"] = dropped
        if dropped:
            say(
                f"teacher-distillation: {dropped} of {len(context.triples)} budget triples have no teacher score "
                "and are dropped from this regime's budget"
            )
        if not self.kept:
            raise UsageError("teacher-distillation: no budget triple has a teacher score; check the score file's ids")

    def scored_triples(self, triples: Sequence[Triple]) -> Sequence[Triple]:
        """The triples the teacher scored both pairs of, in their order (a store stays a store)."""
        scored = ~np.isnan(teacher_margin_values(self.pair_scores, triples))
        if isinstance(triples, TripleStore):
            return triples if scored.all() else triples.take(np.flatnonzero(scored))
        return [t for t, kept in zip(triples, scored.tolist(), strict=True) if kept]

    # --- training ---------------------------------------------------------------------------------------
    def batches(self, triples: Sequence[Triple], batch_size: int, seed: int) -> Iterator[Sequence[Triple]]:
        usable = list(triples) if self.kept is None else self.scored_triples(triples)
        yield from super().batches(usable, batch_size, seed)

    def loss(self, embeddings: TripleEmbeddings, batch: Sequence[Triple]) -> torch.Tensor:
        return margin_mse_on_teacher(
            self.criterion, self.pair_scores, self.scale, self.settings["in_batch_weight"], embeddings, batch
        )

    def evaluation_systems(self, env: Any) -> dict:
        system = self.teacher.system(env)
        name = f"teacher:{self.teacher.spec}"
        return {name: system}
