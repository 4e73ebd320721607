"""The compact triple store: the same seeded order, prefixes and validation split as the list of Python
objects it replaces, a faithful round trip, and a bounded cost per triple."""

from __future__ import annotations

import random

import numpy as np
import pytest

from benchmark.data.budget import Split, split_validation
from benchmark.data.triples import Triple, TripleStore


def list_split(triples: list[Triple], validation_fraction: float, seed: int) -> Split:
    """The split as it was computed on a list of Triple objects before the store (the reference)."""
    queries = sorted({triple.query_id for triple in triples})
    rng = random.Random(seed)
    held_out = sorted(rng.sample(queries, k=round(validation_fraction * len(queries))))
    if validation_fraction > 0 and not held_out:
        held_out = [rng.choice(queries)]
    held = set(held_out)
    training = [t for t in triples if t.query_id not in held]
    validation = sorted(t for t in triples if t.query_id in held)
    order = sorted(training)
    random.Random(seed + 1).shuffle(order)
    return Split(order, held_out, sorted({t.query_id for t in training}), validation)


def random_triples(count: int, seed: int) -> list[Triple]:
    """Ids of mixed lengths and scripts (prefixes of one another, non-ASCII), with repeated triples."""
    rng = random.Random(seed)
    queries = [f"q{rng.randrange(10 ** rng.randrange(1, 6))}" for _ in range(max(1, count // 7))]
    docs = [rng.choice(["", "d", "é", "文"]) + str(rng.randrange(10 ** rng.randrange(1, 8))) for _ in range(count)]
    triples = [Triple(rng.choice(queries), rng.choice(docs), rng.choice(docs)) for _ in range(count)]
    return triples + triples[: count // 10]


@pytest.mark.parametrize(("count", "fraction", "seed"), [(1, 0.0, 0), (40, 0.05, 1), (3000, 0.1, 7), (5000, 0.3, 42)])
def test_split_is_the_one_a_list_gave(count, fraction, seed):
    """Order, held-out and training queries, validation triples and every budget prefix equal the reference's."""
    triples = random_triples(count, seed)
    expected = list_split(triples, fraction, seed)
    split = split_validation(TripleStore.from_triples(triples), fraction, seed)
    assert list(split.ordered_triples) == expected.ordered_triples
    assert split.validation_queries == expected.validation_queries
    assert split.training_queries == expected.training_queries
    assert list(split.validation_triples) == expected.validation_triples
    for f in (0.01, 0.135, 0.5, 1.0):
        assert list(split.budget(f)) == expected.budget(f)
    assert split_validation(triples, fraction, seed) == split  # a plain list is stored first, same result


def test_round_trip_and_sequence_behaviour():
    """Elements are the Triples put in, in order; indexing, negative indices, slices and equality as a list's."""
    triples = random_triples(500, 3)
    store = TripleStore.from_triples(triples)
    assert len(store) == len(triples)
    assert list(store) == triples
    assert store == triples and triples == store
    assert store[0] == triples[0] and store[-1] == triples[-1]
    assert isinstance(store[3], Triple)
    assert list(store[10:20]) == triples[10:20]
    assert list(store[::-3][5:9]) == triples[::-3][5:9]
    assert store[10:20] == store[10:20] and store[10:20] != store[11:21]
    assert list(store.take(np.array([4, 2, 4]))) == [triples[4], triples[2], triples[4]]
    assert store.positive_ids() == {t.positive_id for t in triples}
    wanted = {triples[0].query_id, triples[7].query_id, "no such query"}
    assert list(store.with_queries(wanted)) == [t for t in triples if t.query_id in wanted]
    with pytest.raises(IndexError):
        store[len(triples)]
    assert list(TripleStore.from_triples([])) == []


def test_views_share_the_codes():
    """A budget prefix is a view over the split's order, not a copy of it."""
    split = split_validation(random_triples(2000, 5), 0.1, seed=3)
    prefix = split.budget(0.5)
    assert np.shares_memory(prefix.rows, split.ordered_triples.rows)
    assert prefix.queries is split.ordered_triples.queries


def test_memory_per_triple_is_bounded():
    """At 100k MS MARCO-like triples (7-digit ids, about 100 a query) the store, order and split cost at most
    64 bytes a triple (arrays counted exactly; 12 for the codes, 4 for the order, plus the id tables)."""
    rng = np.random.default_rng(0)
    count = 100_000
    queries = rng.integers(1_000_000, 9_999_999, size=count // 100)
    docs = rng.integers(1_000_000, 8_841_823, size=count // 6)
    rows = zip(
        (str(q) for q in rng.choice(queries, count)),
        (str(d) for d in rng.choice(docs, count)),
        (str(d) for d in rng.choice(docs, count)),
        strict=True,
    )
    store = TripleStore.from_rows(rows)
    split = split_validation(store, 0.1, seed=0)
    held = store.nbytes + split.ordered_triples.rows.nbytes + split.validation_triples.rows.nbytes
    assert held / count <= 64
