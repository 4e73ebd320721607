"""Pairs and PairScores behave as the sorted list of tuples and the dict they replace, in a few bytes a pair."""

from __future__ import annotations

import random

import numpy as np
import pytest

from benchmark.data.pairs import Pairs, PairScores, scores_of
from benchmark.data.triples import Triple, TripleStore


def random_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(f"q{rng.randrange(40)}", f"doc-{rng.randrange(90)}") for _ in range(count)]


def random_triples(count: int, seed: int = 1) -> list[Triple]:
    rng = random.Random(seed)
    return [Triple(f"q{rng.randrange(30)}", f"d{rng.randrange(60)}", f"d{rng.randrange(60)}") for _ in range(count)]


def test_pairs_are_the_sorted_distinct_tuples():
    keys = random_pairs(700) + [("é", "ü"), ("Z", "a")]  # non-ASCII ids sort as Python sorts str
    pairs = Pairs.from_keys(keys)
    assert list(pairs) == sorted(set(keys))
    assert pairs == sorted(set(keys))
    assert pairs[3] == sorted(set(keys))[3]
    assert list(pairs[5:9]) == sorted(set(keys))[5:9]


@pytest.mark.parametrize("view", [slice(None), slice(20, 90), slice(None, None, -1)])
def test_pairs_of_triples_reuse_a_stores_codes_and_match_the_set(view):
    triples = random_triples(300)
    store = TripleStore.from_rows(triples)[view]
    wanted = sorted({(t.query_id, d) for t in triples[view] for d in (t.positive_id, t.negative_id)})
    from_store = Pairs.of_triples(store)
    assert list(from_store) == wanted
    assert list(Pairs.of_triples(triples[view])) == wanted
    assert from_store.query_table is store.query_table  # no copy of the id tables


def test_set_operations_and_digest():
    first, second = Pairs.from_keys(random_pairs(300, 1)), Pairs.from_keys(random_pairs(300, 2))
    assert list(first.difference(second)) == sorted(set(first) - set(second))
    assert list(first.union(second)) == sorted(set(first) | set(second))
    same = Pairs.from_keys(list(first) + [("zz", "zz")])[: len(first)]  # equal pairs, other tables
    assert same.digest() == first.digest()
    assert first.digest() != second.digest()


def test_pair_scores_read_as_the_dict_they_replace(tmp_path):
    rng = random.Random(3)
    scores = {pair: rng.uniform(-5, 5) for pair in random_pairs(500)}
    compact = PairScores.from_items(scores.items())
    assert compact == scores
    assert list(compact) == sorted(scores)
    pair = next(iter(scores))
    assert compact[pair] == scores[pair] and pair in compact
    assert ("q1", "nowhere") not in compact
    with pytest.raises(KeyError):
        compact[("q1", "nowhere")]
    looked = scores_of(compact, [pair[0], "q1"], [pair[1], "nowhere"])
    assert looked[0] == scores[pair] and np.isnan(looked[1])
    assert list(scores_of(scores, [pair[0]], [pair[1]])) == [scores[pair]]  # a plain dict works the same
    compact.save(tmp_path / "scores.npz")
    assert PairScores.load(tmp_path / "scores.npz") == scores


def test_a_pair_given_twice_keeps_its_last_score_and_merging_keeps_both_sides():
    items = [(("q1", "d1"), 1.0), (("q1", "d2"), 2.0), (("q1", "d1"), 3.0)]
    assert PairScores.from_items(items) == {("q1", "d1"): 3.0, ("q1", "d2"): 2.0}
    left = PairScores.from_items([(("q1", "d1"), 1.0), (("q2", "d1"), 2.0)])
    right = {("q2", "d1"): 2.0, ("q3", "d9"): 4.0}
    assert left.merged(right) == {("q1", "d1"): 1.0, ("q2", "d1"): 2.0, ("q3", "d9"): 4.0}
    assert left.on(Pairs.from_keys([("q2", "d1"), ("q9", "d9")])) == {("q2", "d1"): 2.0}


def test_scores_take_a_few_bytes_a_pair():
    """A dict of tuples of strings takes some 250 bytes a pair; the arrays about 16 (plus the id tables)."""
    count = 200_000
    rng = np.random.default_rng(0)
    queries, docs = rng.integers(0, 20_000, count), rng.integers(0, 500_000, count)
    items = ((("q" + str(q), "d" + str(d)), float(i)) for i, (q, d) in enumerate(zip(queries, docs, strict=True)))
    compact = PairScores.from_items(items)
    assert len(compact) > 0.99 * count
    assert compact.nbytes / len(compact) <= 24
