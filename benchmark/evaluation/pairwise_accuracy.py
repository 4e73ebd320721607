"""Pairwise accuracy on the held-out validation triples: how often a scorer puts the positive above the negative.

A teacher is only worth distilling if it orders the pairs better than the student already does; this is measured
for the initial encoder and for every distinct teacher of the run, once per seed, in the phase
``pairwise-accuracy`` charged to no regime, and written as the column ``pairwise_accuracy`` of their rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.common.progress import say
from benchmark.data.budget import Split
from benchmark.data.collections import Collection
from benchmark.data.triples import Triple
from benchmark.encoder import BiEncoder
from benchmark.measurement.phases import Meter
from benchmark.training.context import RegimeContext

if TYPE_CHECKING:
    from regimes import Regime

PHASE = "pairwise-accuracy"


def pairwise_accuracy(margins: Sequence[float]) -> float:
    """The share of margins score(q,d+) - score(q,d-) above 0; a tie (margin exactly 0) counts half."""
    values = np.asarray(margins, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    return float(((values > 0).sum() + 0.5 * (values == 0).sum()) / values.size)


def encoder_margins(encoder: BiEncoder, collection: Collection, triples: Sequence[Triple]) -> list[float]:
    """sim(q,d+) - sim(q,d-) of each triple under the encoder (cosine or dot, as it is configured)."""
    query_ids = sorted({t.query_id for t in triples})
    doc_ids = sorted({d for t in triples for d in (t.positive_id, t.negative_id)})
    queries = dict(zip(query_ids, encoder.encode([collection.queries[q] for q in query_ids], "query"), strict=True))
    docs = dict(zip(doc_ids, encoder.encode(collection.document_texts(doc_ids), "doc"), strict=True))
    return [float(queries[t.query_id] @ (docs[t.positive_id] - docs[t.negative_id])) for t in triples]


def teacher_margins_on(teacher, triples: Sequence[Triple], context: RegimeContext) -> list[float]:
    """t(q,d+) - t(q,d-) of each triple the teacher scores both pairs of (a score file may score none)."""
    from regimes.teacher_scale import teacher_margin_values
    from regimes.teachers import teacher_scores, training_pairs

    margins = teacher_margin_values(teacher_scores(teacher, training_pairs(triples), context), triples)
    return margins[~np.isnan(margins)].tolist()


def measure(
    initial: BiEncoder, teacher_specs: Sequence[str], context: RegimeContext, validation_triples: Sequence[Triple]
) -> dict[str, float]:
    """{"initial": accuracy, "teacher:<spec>": accuracy, ...}; a teacher that scores no validation triple is left
    out (it cannot be measured). ``context`` is charged to no regime (label "")."""
    from regimes.teachers import parse_teacher

    found: dict[str, float] = {}
    if not validation_triples:
        return found
    with context.meter.phase(PHASE, cell=context.cell) as record:
        found["initial"] = pairwise_accuracy(encoder_margins(initial, context.collection, validation_triples))
        for spec in dict.fromkeys(teacher_specs):
            teacher = parse_teacher(spec)
            teacher.load(context.encoder_config)
            margins = teacher_margins_on(teacher, validation_triples, context)
            if margins:
                found[f"teacher:{spec}"] = pairwise_accuracy(margins)
            else:
                say(f"teacher:{spec}: pairwise accuracy cannot be measured (it scores no validation triple)")
        record.count = len(validation_triples)
    shown = ", ".join(f"{name} {value:.3f}" for name, value in found.items())
    say(f"Pairwise accuracy on {len(validation_triples)} validation triples: {shown}")
    return found


def measure_for_seed(
    initial: BiEncoder,
    regimes: Sequence[Regime],
    split: Split,
    collection: Collection,
    config: Any,
    meter: Meter,
    seed: int,
    state: Any,
) -> None:
    """The initial encoder's and each distinct teacher's pairwise accuracy on the validation triples, charged to
    no regime; kept in the run's notes as {system: {seed: accuracy}} for the results rows."""
    specs = [regime.teacher.spec for regime in regimes if getattr(regime, "teacher", None) is not None]
    context = RegimeContext(
        label="",
        cell=f"{PHASE}|seed={seed}",
        collection=collection,
        triples=split.validation_triples,
        encoder_config=config.encoder,
        meter=meter,
        cache_dir=config.cache_dir,
        seed=seed,
        batch_size=config.training.batch_size,
        encoder=initial,
        training_triples=split.ordered_triples,
        processes=state.processes,
    )
    found = measure(initial, specs, context, split.validation_triples)
    accuracies = state.notes.setdefault("pairwise_accuracy", {})
    for system, value in found.items():
        accuracies.setdefault(system, {})[str(seed)] = value
