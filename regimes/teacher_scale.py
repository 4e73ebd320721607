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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from benchmark.data.pairs import PairKey, scores_of
from benchmark.data.triples import CHUNK, Triple


def parse_teacher_scale(text: str) -> float | str:
    """``auto`` or a number > 0."""
    if text == "auto":
        return "auto"
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise ValueError("expected auto or a number > 0")
    return value


def teacher_margin_values(scores: Mapping[PairKey, float], triples: Sequence[Triple]) -> np.ndarray:
    """t(q,d+) - t(q,d-) of each triple, in order; NaN where the teacher did not score both pairs."""
    margins = np.empty(len(triples), dtype=np.float64)
    for start in range(0, len(triples), CHUNK):
        part = list(triples[start : start + CHUNK])
        queries = [t.query_id for t in part]
        positives = scores_of(scores, queries, [t.positive_id for t in part])
        margins[start : start + len(part)] = positives - scores_of(scores, queries, [t.negative_id for t in part])
    return margins


def rms_ratio(student: np.ndarray, teacher: np.ndarray) -> float:
    """sqrt(mean(student^2) / mean(teacher^2)); 1 when the teacher's margins are all 0 (nothing to scale)."""
    teacher_rms = math.sqrt(float(np.mean(teacher**2))) if teacher.size else 0.0
    if teacher_rms == 0:
        return 1.0
    return math.sqrt(float(np.mean(student**2))) / teacher_rms


def triples_digest(triples: Sequence[Triple]) -> str:
    """A content hash of the triples in their order, computed a chunk at a time."""
    digest = hashlib.sha1()
    for start in range(0, len(triples), CHUNK):
        digest.update(json.dumps([list(t) for t in triples[start : start + CHUNK]]).encode())
    return digest.hexdigest()


def initial_margins(context: Any) -> np.ndarray:
    """The initial encoder's margin sim(q,d+) - sim(q,d-) of each training triple, in their order, computed in the
    phase ``teacher-scale`` charged to the regime; cached on disk by encoder and triples, a reuse charged the
    original cost."""
    from benchmark.common.files import read_json, write_json
    from benchmark.common.progress import say

    triples = context.training_triples
    encoder = context.encoder
    identity = json.dumps([list(map(str, encoder.identity)), context.collection.name])
    key = hashlib.sha1(f"{identity}{triples_digest(triples)}".encode()).hexdigest()[:16]
    folder = context.cache_dir / "initial-margins"
    cache, cost = folder / f"{key}.npy", folder / f"{key}.json"
    if cache.exists() and cost.exists():
        context.meter.replay(read_json(cost)["phase"], charged_to=context.label, cell=context.cell)
        return np.load(cache)
    with context.meter.phase("teacher-scale", charged_to=context.label, cell=context.cell) as record:
        say(f"Initial encoder margins on {len(triples)} training triples (for teacher_scale=auto)")
        query_ids = sorted({t.query_id for t in triples})
        doc_ids = sorted({d for t in triples for d in (t.positive_id, t.negative_id)})
        queries = encoder.encode([context.collection.queries[q] for q in query_ids], "query")
        docs = encoder.encode(context.collection.document_texts(doc_ids), "doc")
        query_row = {q: i for i, q in enumerate(query_ids)}
        doc_row = {d: i for i, d in enumerate(doc_ids)}
        margins = np.fromiter(
            (
                float(queries[query_row[t.query_id]] @ (docs[doc_row[t.positive_id]] - docs[doc_row[t.negative_id]]))
                for t in triples
            ),
            dtype=np.float64,
            count=len(triples),
        )
        record.count = len(triples)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{key}.partial.npy"
    np.save(partial, margins)
    partial.replace(cache)
    write_json(cost, {"phase": record.row(), "triples": len(triples)})
    return margins


def fitted_teacher_scale(scores: Mapping[PairKey, float], context: Any) -> float:
    """``auto``: the RMS ratio of the initial encoder's to the teacher's margins over the full training triples
    the teacher scored both pairs of."""
    student = initial_margins(context)
    teacher = teacher_margin_values(scores, context.training_triples)
    scored = ~np.isnan(teacher)
    return rms_ratio(student[scored], teacher[scored])
