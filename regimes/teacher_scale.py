"""The factor that puts a teacher's margins on the student's similarity scale (``teacher_scale=auto|<number>``).

Margin-MSE asks the student's margin sim(q,d+) - sim(q,d-) to equal the teacher's margin. Raw teacher margins
(BM25 differences of 10, logits of 5, standardised ensembles of +-2) are out of reach of a cosine student, whose
margins lie in [-2, 2] and start near +-0.1: the loss would then be dominated by magnitude, not order.

``auto`` fits one factor, once, on the full training triples (never the budget, so every cell and fraction gets
the same): the ratio of root-mean-square margins, sqrt(mean(m_student^2) / mean(m_teacher^2)), with m_student the
initial encoder's margins (cosine or dot, whichever the run uses). Scaled, the teacher's margins are on average as
large as the student's are at the start. A least-squares slope through the origin would be that ratio times the
correlation of the two margins: it shrinks the targets exactly where the teacher disagrees with the student,
which is where the teacher has something to teach, and would go to 0 for an uncorrelated teacher.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmark.data.triples import Triple
from regimes.teachers import PairKey


def parse_teacher_scale(text: str) -> float | str:
    """``auto`` or a number > 0."""
    if text == "auto":
        return "auto"
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise ValueError("expected auto or a number > 0")
    return value


def teacher_margin_values(scores: dict[PairKey, float], triples: Sequence[Triple]) -> np.ndarray:
    """t(q,d+) - t(q,d-) of every triple the teacher scored both pairs of."""
    return np.array(
        [
            scores[(t.query_id, t.positive_id)] - scores[(t.query_id, t.negative_id)]
            for t in triples
            if (t.query_id, t.positive_id) in scores and (t.query_id, t.negative_id) in scores
        ],
        dtype=np.float64,
    )


def rms_ratio(student: np.ndarray, teacher: np.ndarray) -> float:
    """sqrt(mean(student^2) / mean(teacher^2)); 1 when the teacher's margins are all 0 (nothing to scale)."""
    teacher_rms = math.sqrt(float(np.mean(teacher**2))) if teacher.size else 0.0
    if teacher_rms == 0:
        return 1.0
    return math.sqrt(float(np.mean(student**2))) / teacher_rms


def initial_margins(context: Any) -> dict[Triple, float]:
    """The initial encoder's margin sim(q,d+) - sim(q,d-) on every training triple, in the phase ``teacher-scale``
    charged to the regime; cached on disk by encoder and triples, a reuse charged the original cost."""
    from benchmark.common.files import read_json, write_json
    from benchmark.common.progress import say

    triples = list(context.training_triples)
    encoder = context.encoder
    key = hashlib.sha1(
        json.dumps([list(map(str, encoder.identity)), context.collection.name, triples]).encode()
    ).hexdigest()[:16]
    cache = context.cache_dir / "initial-margins" / f"{key}.json"
    if cache.exists():
        cached = read_json(cache)
        context.meter.replay(cached["phase"], charged_to=context.label, cell=context.cell)
        return dict(zip(triples, cached["margins"], strict=True))
    with context.meter.phase("teacher-scale", charged_to=context.label, cell=context.cell) as record:
        say(f"Initial encoder margins on {len(triples)} training triples (for teacher_scale=auto)")
        query_ids = sorted({t.query_id for t in triples})
        doc_ids = sorted({d for t in triples for d in (t.positive_id, t.negative_id)})
        queries = encoder.encode([context.collection.queries[q] for q in query_ids], "query")
        docs = encoder.encode(context.collection.document_texts(doc_ids), "doc")
        query_row = {q: i for i, q in enumerate(query_ids)}
        doc_row = {d: i for i, d in enumerate(doc_ids)}
        margins = [
            float(queries[query_row[t.query_id]] @ (docs[doc_row[t.positive_id]] - docs[doc_row[t.negative_id]]))
            for t in triples
        ]
        record.count = len(triples)
    write_json(cache, {"phase": record.row(), "margins": margins})
    return dict(zip(triples, margins, strict=True))


def fitted_teacher_scale(scores: dict[PairKey, float], context: Any) -> float:
    """``auto``: the RMS ratio of the initial encoder's to the teacher's margins over the full training triples."""
    student = initial_margins(context)
    scored = [t for t in context.training_triples if (t.query_id, t.positive_id) in scores]
    scored = [t for t in scored if (t.query_id, t.negative_id) in scores]
    return rms_ratio(np.array([student[t] for t in scored]), teacher_margin_values(scores, scored))
