"""The claims' measures on hand-made frames: time-to-target, data efficiency and the paired tests (no training)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmark.claims import data_efficiency, paired_tests, time_to_target
from benchmark.evaluation import safe_name

REFERENCE = "teacher-distillation"
SELF = "self-distillation"
CURVE_COLUMNS = ["regime", "data_fraction", "seed", "step", "examples_seen", "elapsed_s", "ndcg_at_10"]


def curve(regime: str, fraction: float, seed: int, points: list[tuple[int, int, float, float]]) -> list[dict]:
    """Rows of curves.csv: points are (step, examples_seen, elapsed_s, ndcg_at_10)."""
    return [
        dict(zip(CURVE_COLUMNS, (regime, fraction, seed, step, examples, elapsed, ndcg), strict=True))
        for step, examples, elapsed, ndcg in points
    ]


@pytest.fixture
def curves() -> pd.DataFrame:
    rows = [
        # Seed 1. The reference at its largest fraction: best 0.70, first reached at step 20 (200 s), again at 30.
        # Its initial point (step 0) scores higher than any trained point and must be ignored.
        *curve(REFERENCE, 1.0, 1, [(0, 0, 0.0, 0.90), (10, 320, 100.0, 0.50), (20, 640, 200.0, 0.70)]),
        *curve(REFERENCE, 1.0, 1, [(30, 960, 300.0, 0.70), (40, 1280, 400.0, 0.65)]),
        # The reference at a smaller fraction scores higher: the target is still the one at the largest fraction.
        *curve(REFERENCE, 0.5, 1, [(0, 0, 0.0, 0.30), (10, 320, 50.0, 0.80)]),
        # Self-distillation at 0.135 reaches 0.70 at step 10 (40 s, 320 examples); step 0 (0 s) already scores
        # above the target and is ignored.
        *curve(SELF, 0.135, 1, [(15, 480, 60.0, 0.72), (0, 0, 0.0, 0.75), (5, 160, 20.0, 0.60)]),
        *curve(SELF, 0.135, 1, [(10, 320, 40.0, 0.71)]),
        # Self-distillation at 0.25 never gets there (its initial point does, and does not count).
        *curve(SELF, 0.25, 1, [(0, 0, 0.0, 0.75), (5, 160, 30.0, 0.60), (10, 320, 60.0, 0.69)]),
        # Seed 2: its own target (0.60, first reached at 150 s), computed independently of seed 1.
        *curve(REFERENCE, 1.0, 2, [(0, 0, 0.0, 0.30), (10, 320, 150.0, 0.60), (20, 640, 300.0, 0.55)]),
        *curve(SELF, 0.135, 2, [(0, 0, 0.0, 0.30), (5, 160, 25.0, 0.50), (10, 320, 50.0, 0.60)]),
        # Seed 3 has no reference run: nothing to compare against.
        *curve(SELF, 0.135, 3, [(0, 0, 0.0, 0.30), (5, 160, 10.0, 0.99)]),
    ]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def by_cell(curves: pd.DataFrame) -> dict:
    return {(t.regime, t.data_fraction, t.seed): t for t in time_to_target(curves, REFERENCE)}


def test_time_to_target_of_a_regime_that_reaches_it(curves):
    """The first trained point at or above the reference's best gives the wall-clock, examples and speedup."""
    t = by_cell(curves)[(SELF, 0.135, 1)]
    assert t.target == 0.70
    assert t.reached
    assert t.wall_s == 40.0
    assert t.examples == 320
    assert t.reference_wall_to_best_s == 200.0  # the first time the reference reached its best, not the second
    assert t.speedup == 200.0 / 40.0


def test_time_to_target_of_the_reference_itself(curves):
    """The reference at its largest fraction needs exactly its own time to best; at 0.5 it gets there sooner."""
    cells = by_cell(curves)
    full = cells[(REFERENCE, 1.0, 1)]
    assert full.reached and full.wall_s == 200.0 and full.examples == 640 and full.speedup == 1.0
    half = cells[(REFERENCE, 0.5, 1)]
    assert half.target == 0.70  # from the largest fraction, although 0.5 scored 0.80
    assert half.reached and half.wall_s == 50.0 and half.speedup == 4.0


def test_time_to_target_never_reached(curves):
    """A regime whose trained points all stay below the target: not reached, NaN time and speedup."""
    t = by_cell(curves)[(SELF, 0.25, 1)]
    assert not t.reached
    assert math.isnan(t.wall_s)
    assert math.isnan(t.speedup)
    assert t.target == 0.70 and t.reference_wall_to_best_s == 200.0


def test_time_to_target_per_seed(curves):
    """Each seed is compared with the reference of the same seed."""
    t = by_cell(curves)[(SELF, 0.135, 2)]
    assert t.target == 0.60
    assert t.reached and t.wall_s == 50.0 and t.examples == 320
    assert t.reference_wall_to_best_s == 150.0
    assert t.speedup == 3.0
    assert {(t.regime, t.data_fraction) for t in time_to_target(curves, REFERENCE) if t.seed == 2} == {
        (REFERENCE, 1.0),
        (SELF, 0.135),
    }


def test_time_to_target_without_the_reference(curves):
    """A seed (or a whole run) without the reference yields no rows."""
    assert 3 not in {t.seed for t in time_to_target(curves, REFERENCE)}
    assert time_to_target(curves[curves["regime"] == SELF], REFERENCE) == []
    assert time_to_target(curves, "no-such-regime") == []


SCIFACT, NFCORPUS = "beir/scifact/test", "beir/nfcorpus/test"


@pytest.fixture
def results() -> pd.DataFrame:
    rows = []

    def add(*values):
        rows.append(dict(zip(["kind", "regime", "data_fraction", "seed", "eval_set", "nDCG@10"], values, strict=True)))

    # SciFact: the reference at 1.0 averages 0.70 over two seeds; self-distillation 0.695 at 0.135, 0.70 at 0.25.
    add("regime", REFERENCE, 1.0, 1, SCIFACT, 0.69)
    add("regime", REFERENCE, 1.0, 2, SCIFACT, 0.71)
    add("regime", REFERENCE, 0.5, 1, SCIFACT, 0.10)  # not the reference score: that one is at 1.0
    add("regime", SELF, 0.25, 1, SCIFACT, 0.70)
    add("regime", SELF, 0.135, 1, SCIFACT, 0.695)
    # Systems that are not regimes are not compared, however good.
    add("bm25", None, None, None, SCIFACT, 0.99)
    add("teacher", None, None, None, SCIFACT, 0.99)
    # NFCorpus: the reference at 0.50; self-distillation well below it at every fraction.
    add("regime", REFERENCE, 1.0, 1, NFCORPUS, 0.50)
    add("regime", REFERENCE, 1.0, 2, NFCORPUS, 0.50)
    add("regime", SELF, 0.135, 1, NFCORPUS, 0.40)
    add("regime", SELF, 0.25, 1, NFCORPUS, 0.45)
    return pd.DataFrame(rows)


def efficiency(results, tolerance, significance=None, regime=SELF) -> dict:
    out = data_efficiency(results, REFERENCE, tolerance, significance)
    assert {d.regime for d in out} == {SELF, REFERENCE}
    mine = [d for d in out if d.regime == regime]
    assert sorted(d.eval_set for d in mine) == sorted([SCIFACT, NFCORPUS])
    return {d.eval_set: d for d in mine}


def test_data_efficiency_of_the_reference_itself(results):
    """The reference needs all its data on SciFact (0.10 at 0.5 is far below its 0.70 at 1.0)."""
    d = efficiency(results, 0.01, regime=REFERENCE)[SCIFACT]
    assert [f for f, _, _ in d.fractions] == [0.5, 1.0]
    assert d.smallest_within == 1.0


def test_data_efficiency_within_a_loose_tolerance(results):
    """With a tolerance of 0.01, 0.695 is within reach of 0.70: the smallest fraction is 0.135."""
    d = efficiency(results, 0.01)[SCIFACT]
    assert d.reference_ndcg == pytest.approx(0.70)
    assert d.tolerance == 0.01
    assert d.smallest_within == 0.135
    assert [f for f, _, _ in d.fractions] == [0.135, 0.25]
    assert [s for _, s, _ in d.fractions] == pytest.approx([0.695, 0.70])
    assert all(math.isnan(p) for _, _, p in d.fractions)  # no p-values given


def test_data_efficiency_within_a_tight_tolerance(results):
    """With a tolerance of 0.001, only 0.25 (0.70) is close enough."""
    assert efficiency(results, 0.001)[SCIFACT].smallest_within == 0.25


def test_data_efficiency_skips_a_significantly_worse_fraction(results):
    """Within tolerance but significantly worse (p < 0.05 and below the reference) does not count."""
    d = efficiency(results, 0.01, {(SELF, SCIFACT): {0.135: 0.01}})[SCIFACT]
    assert d.smallest_within == 0.25
    assert d.fractions[0][2] == 0.01
    assert math.isnan(d.fractions[1][2])


def test_data_efficiency_ignores_significance_when_better(results):
    """A significant difference above the reference is not 'significantly worse'."""
    better = results.copy()
    better.loc[(better["regime"] == SELF) & (better["data_fraction"] == 0.135), "nDCG@10"] = 0.80
    assert efficiency(better, 0.01, {(SELF, SCIFACT): {0.135: 0.001}})[SCIFACT].smallest_within == 0.135


def test_data_efficiency_none_qualifies_and_eval_sets_are_separate(results):
    """On NFCorpus no fraction is within 0.01 of the reference; SciFact's answer is unaffected."""
    out = efficiency(results, 0.01, {(SELF, NFCORPUS): {0.135: 0.5, 0.25: 0.5}})
    assert out[NFCORPUS].smallest_within is None
    assert out[NFCORPUS].reference_ndcg == pytest.approx(0.50)
    assert [s for _, s, _ in out[NFCORPUS].fractions] == pytest.approx([0.40, 0.45])
    assert [p for _, _, p in out[NFCORPUS].fractions] == [0.5, 0.5]
    assert out[SCIFACT].smallest_within == 0.135
    assert out[SCIFACT].reference_ndcg == pytest.approx(0.70)


QUERIES = [f"q{i}" for i in range(1, 7)]
DOCUMENTS = [f"d{i}" for i in range(1, 6)]


def ranking(relevant_ranks: list[int]) -> pd.DataFrame:
    """A run over 5 documents per query with the one relevant document (d1) at the given 1-based rank."""
    rows = []
    for qid, where in zip(QUERIES, relevant_ranks, strict=True):
        others = DOCUMENTS[1:]
        order = others[: where - 1] + ["d1"] + others[where - 1 :]
        rows += [{"qid": qid, "docno": docno, "rank": k, "score": 10.0 - k} for k, docno in enumerate(order)]
    return pd.DataFrame(rows)


def test_paired_tests_on_saved_runs(tmp_path):
    """A system better on every query is significantly better after Holm; an identical copy of the baseline is not."""
    import pyterrier as pt

    eval_set = "beir/scifact/test"
    baseline, better, copy = (f"{REFERENCE} f=1.0 seed=1", f"{SELF} f=0.135 seed=1", f"{SELF} f=0.25 seed=1")
    folder = tmp_path / "runs" / safe_name(eval_set)
    folder.mkdir(parents=True)
    baseline_ranks = [2, 3, 4, 5, 2, 3]
    for name, ranks in [(baseline, baseline_ranks), (better, [1] * 6), (copy, baseline_ranks)]:
        pt.io.write_results(ranking(ranks), str(folder / f"{safe_name(name)}.res.gz"))
    topics = pd.DataFrame({"qid": QUERIES, "query": [f"query {q}" for q in QUERIES]})
    qrels = pd.DataFrame({"qid": QUERIES, "docno": "d1", "label": 1})

    p_values = paired_tests(tmp_path, eval_set, baseline, [better, copy], qrels, topics)
    assert set(p_values) == {better, copy}
    assert p_values[better] < 0.05
    assert math.isnan(p_values[copy])  # no differences at all: the t-test is undefined
    assert not p_values[copy] < 0.05

    # Holm over two systems: the smallest p-value is doubled.
    alone = paired_tests(tmp_path, eval_set, baseline, [better], qrels, topics)
    assert p_values[better] == pytest.approx(2 * alone[better])
