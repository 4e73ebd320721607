"""The data budget: held-out validation queries, one seeded order of the training triples, and the fraction
every regime receives of it."""

from __future__ import annotations

import array
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from benchmark.common.errors import UsageError
from benchmark.data.triples import Triple, TripleStore


def budget_size(fraction: float, total: int) -> int:
    """ceil(f * N), guarded against float noise such as 0.135 * 1000 = 135.00000000000003."""
    if not 0 < fraction <= 1:
        raise UsageError(f"--data-fraction {fraction} is outside (0, 1]; give a fraction such as 0.135")
    return min(total, max(1, math.ceil(round(fraction * total, 9))))


@dataclass(frozen=True)
class Split:
    """Training triples in their one seeded order, and the held-out validation queries."""

    ordered_triples: TripleStore
    validation_queries: list[str]
    training_queries: list[str]
    validation_triples: Sequence[Triple] = field(default_factory=list)  # the held-out queries' triples, sorted

    def budget(self, fraction: float) -> TripleStore:
        """The first ceil(f * N) triples of the shared order: every regime gets the same prefix (a view)."""
        return self.ordered_triples[: budget_size(fraction, len(self.ordered_triples))]


def seeded_permutation(size: int, seed: int) -> np.ndarray:
    """``random.Random(seed).shuffle`` of ``range(size)``, held as 4 (or 8) bytes an entry: the shuffle's swaps
    depend only on the length, so sorted[permutation] is the order that shuffling the sorted list gives."""
    permutation = array.array("i" if size < 2**31 else "q", range(size))
    random.Random(seed).shuffle(permutation)
    return np.frombuffer(permutation, dtype=np.int32 if permutation.typecode == "i" else np.int64)


def split_validation(triples: Sequence[Triple], validation_fraction: float, seed: int) -> Split:
    """Hold out a seeded share of the queries; none of their triples enter training.

    Works on the store's codes: the id tables are sorted, so sorting codes sorts the triples as tuples of str,
    and sampling positions of the sorted distinct queries samples the queries themselves."""
    if not 0 <= validation_fraction < 1:
        raise UsageError(f"--validation-fraction {validation_fraction} is outside [0, 1); give e.g. 0.1")
    store = TripleStore.from_triples(triples).compact()
    queries, positives, negatives = store.codes()
    present = np.unique(queries)  # the sorted distinct query ids, as codes
    if not len(present):
        raise UsageError("the training split yields no triples; check its qrels and documents")
    rng = random.Random(seed)
    positions = range(len(present))
    held_out = np.sort(present[rng.sample(positions, k=round(validation_fraction * len(present)))])
    if validation_fraction > 0 and not len(held_out):
        held_out = present[[rng.choice(positions)]]
    held = np.zeros(len(store.query_table), dtype=bool)
    held[held_out] = True
    in_order = np.lexsort((negatives, positives, queries))  # sorted(triples)
    is_held = held[queries[in_order]]
    training, validation = in_order[~is_held], in_order[is_held]
    if not len(training):
        raise UsageError("holding out validation queries leaves no training triples; lower --validation-fraction")
    index_type = np.int32 if len(store) < 2**31 else np.int64
    training = training.astype(index_type)
    return Split(
        ordered_triples=store.take(training[seeded_permutation(len(training), seed + 1)]),
        validation_queries=store.query_ids(held_out),
        training_queries=store.query_ids(np.setdiff1d(present, held_out)),
        validation_triples=store.take(validation.astype(index_type)),
    )
