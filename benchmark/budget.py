"""The data budget: held-out validation queries, one seeded order of the training triples, and the fraction
every regime receives of it."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmark.errors import UsageError
from benchmark.triples import Triple


def budget_size(fraction: float, total: int) -> int:
    """ceil(f * N), guarded against float noise such as 0.135 * 1000 = 135.00000000000003."""
    if not 0 < fraction <= 1:
        raise UsageError(f"--data-fraction {fraction} is outside (0, 1]; give a fraction such as 0.135")
    return min(total, max(1, math.ceil(round(fraction * total, 9))))


@dataclass(frozen=True)
class Split:
    """Training triples in their one seeded order, and the held-out validation queries."""

    ordered_triples: list[Triple]
    validation_queries: list[str]
    training_queries: list[str]
    validation_triples: list[Triple] = field(default_factory=list)  # the held-out queries' triples, sorted

    def budget(self, fraction: float) -> list[Triple]:
        """The first ceil(f * N) triples of the shared order: every regime gets the same prefix."""
        return self.ordered_triples[: budget_size(fraction, len(self.ordered_triples))]


def split_validation(triples: Sequence[Triple], validation_fraction: float, seed: int) -> Split:
    """Hold out a seeded share of the queries; none of their triples enter training."""
    if not 0 <= validation_fraction < 1:
        raise UsageError(f"--validation-fraction {validation_fraction} is outside [0, 1); give e.g. 0.1")
    queries = sorted({triple.query_id for triple in triples})
    if not queries:
        raise UsageError("the training split yields no triples; check its qrels and documents")
    rng = random.Random(seed)
    held_out = sorted(rng.sample(queries, k=round(validation_fraction * len(queries))))
    if validation_fraction > 0 and not held_out:
        held_out = [rng.choice(queries)]
    held = set(held_out)
    training = [t for t in triples if t.query_id not in held]
    validation = sorted(t for t in triples if t.query_id in held)
    if not training:
        raise UsageError("holding out validation queries leaves no training triples; lower --validation-fraction")
    order = sorted(training)
    random.Random(seed + 1).shuffle(order)
    return Split(
        ordered_triples=order,
        validation_queries=held_out,
        training_queries=sorted({t.query_id for t in training}),
        validation_triples=validation,
    )
