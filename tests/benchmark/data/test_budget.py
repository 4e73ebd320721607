"""The data budget: ceil(f * N) exactly, held-out validation queries, one seeded order, nested prefixes."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from benchmark.common.errors import UsageError
from benchmark.data.budget import budget_size, split_validation
from benchmark.data.triples import Triple


def exact_ceiling(fraction: str, total: int) -> int:
    """ceil(f * N) in exact rational arithmetic, the number the design promises."""
    return math.ceil(Fraction(fraction) * total)


@pytest.mark.parametrize(
    ("fraction", "total", "expected"),
    [
        ("0.135", 1000, 135),  # 0.135 * 1000 is 135.00000000000003 in floating point
        ("0.135", 3309, 447),  # 446.715 -> 447
        ("0.135", 200, 27),
        ("0.1", 30, 3),  # 0.1 * 30 is 3.0000000000000004
        ("0.7", 10, 7),  # 0.7 * 10 is 7.000000000000001
        ("0.29", 100, 29),  # 0.29 * 100 is 28.999999999999996
        ("0.001", 10, 1),
        ("1", 919, 919),
        ("0.5", 1, 1),
        ("0.5", 0, 0),
    ],
)
def test_budget_size_is_exact_ceiling(fraction, total, expected):
    """Float noise neither adds nor drops an example."""
    assert exact_ceiling(fraction, total) == expected
    assert budget_size(float(fraction), total) == expected


def test_budget_size_matches_exact_ceiling_on_a_grid():
    """Over many fractions and sizes, the rounding guard gives the exact rational ceiling."""
    for thousandths in range(1, 1001, 7):
        fraction = f"{thousandths / 1000:.3f}"
        for total in (1, 7, 100, 809, 1000, 3309, 502939):
            assert budget_size(float(fraction), total) == exact_ceiling(fraction, total), (fraction, total)


def test_tiny_positive_fraction_gives_at_least_one_example():
    """ceil(f * N) is at least 1 for any f > 0 and N > 0: a positive fraction never gives an empty budget."""
    assert budget_size(1e-12, 100) == 1


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.0000001, 1.5, float("nan")])
def test_fraction_outside_unit_interval_is_refused(fraction):
    """Fractions outside (0, 1] are a usage error naming the flag."""
    with pytest.raises(UsageError, match="--data-fraction"):
        budget_size(fraction, 100)


def make_triples(queries: int = 50, per_query: int = 3) -> list[Triple]:
    """Several triples per query, so that holding a query out removes all of its triples."""
    return [Triple(f"q{q:03d}", f"p{q:03d}", f"n{q:03d}-{k}") for q in range(queries) for k in range(per_query)]


def test_validation_queries_never_train():
    """No held-out query contributes a triple to training, and every other triple is kept exactly once."""
    triples = make_triples()
    split = split_validation(triples, 0.1, seed=7)
    held = set(split.validation_queries)
    assert held
    assert not held & {t.query_id for t in split.ordered_triples}
    assert not held & set(split.training_queries)
    assert sorted(split.ordered_triples) == sorted(t for t in triples if t.query_id not in held)
    assert set(split.training_queries) | held == {t.query_id for t in triples}


def test_validation_triples_are_the_held_out_queries_triples():
    """Split.validation_triples: every triple of a held-out query (for pairwise accuracy), none of a training one."""
    triples = make_triples()
    split = split_validation(triples, 0.1, seed=7)
    held = set(split.validation_queries)
    assert split.validation_triples == sorted(t for t in triples if t.query_id in held)
    assert split.validation_triples
    assert not set(split.validation_triples) & set(split.ordered_triples)
    assert len(split.validation_triples) + len(split.ordered_triples) == len(triples)


def test_validation_share_is_about_ten_percent():
    """10% of 50 queries are held out."""
    split = split_validation(make_triples(), 0.1, seed=3)
    assert len(split.validation_queries) == 5
    assert len(split.training_queries) == 45
    assert len(split.ordered_triples) == 45 * 3


def test_order_is_deterministic_per_seed():
    """The same seed gives the same split and order whatever the input order; another seed another order."""
    triples = make_triples()
    first = split_validation(triples, 0.1, seed=11)
    again = split_validation(list(reversed(triples)), 0.1, seed=11)
    other = split_validation(triples, 0.1, seed=12)
    assert first == again
    assert other.ordered_triples != first.ordered_triples
    assert other.validation_queries != first.validation_queries


def test_order_is_shuffled():
    """The training order is not simply the sorted order (a seeded shuffle)."""
    split = split_validation(make_triples(), 0.1, seed=5)
    assert split.ordered_triples != sorted(split.ordered_triples)


def test_budgets_are_nested_prefixes():
    """Every regime and fraction draws from the same order: budget(f) is a prefix of budget(g) for f < g."""
    split = split_validation(make_triples(), 0.1, seed=0)
    total = len(split.ordered_triples)
    fractions = [0.01, 0.1, 0.135, 0.5, 0.9, 1.0]
    budgets = [split.budget(f) for f in fractions]
    for small, large in zip(budgets, budgets[1:], strict=False):
        assert large[: len(small)] == small
        assert len(small) < len(large)
    assert [len(b) for b in budgets] == [budget_size(f, total) for f in fractions]
    assert budgets[-1] == split.ordered_triples


def test_zero_validation_fraction_holds_out_nothing():
    """--validation-fraction 0 keeps every triple for training."""
    triples = make_triples(10, 2)
    split = split_validation(triples, 0.0, seed=1)
    assert split.validation_queries == []
    assert sorted(split.ordered_triples) == sorted(triples)


def test_small_fraction_holds_out_at_least_one_query():
    """A positive validation fraction that rounds to zero queries still holds one out."""
    split = split_validation(make_triples(4, 1), 0.05, seed=1)
    assert len(split.validation_queries) == 1


@pytest.mark.parametrize("fraction", [1.0, -0.1])
def test_bad_validation_fraction_is_refused(fraction):
    """Validation fractions outside [0, 1) are a usage error."""
    with pytest.raises(UsageError, match="--validation-fraction"):
        split_validation(make_triples(), fraction, seed=0)


def test_no_triples_is_refused():
    """An empty training split is a usage error, not an empty run."""
    with pytest.raises(UsageError, match="no triples"):
        split_validation([], 0.1, seed=0)
