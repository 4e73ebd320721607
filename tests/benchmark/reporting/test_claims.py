"""The claims' measures on hand-made frames: time-to-target, data efficiency and the paired tests (no training)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmark.evaluation.systems import safe_name
from benchmark.reporting.claims import data_efficiency, paired_tests, time_to_target

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


# --- verdicts on hand-made run files: claim 1's guard and TOST, claim 2's ratios and rule ----------------------
from benchmark.reporting import claims  # noqa: E402

MANY = [f"q{i:03d}" for i in range(60)]
EVAL = "beir/scifact/test"
FULL, SMALL = f"{REFERENCE} f=1.0 seed=1", f"{SELF} f=0.135 seed=1"
GOOD = [1, 2] * 30  # the relevant document at rank 1 or 2: nDCG@10 1.0 or 0.63
BAD = [5] * 60  # at rank 5: 0.39


def write_runs(run_dir, systems: dict[str, list[int]]) -> None:
    """Saved TREC runs over 60 queries with one relevant document (d1) each, at the given 1-based ranks, plus the
    qrels.tsv and topics.tsv beside them, as a run writes them."""
    import pyterrier as pt

    folder = run_dir / "runs" / safe_name(EVAL)
    folder.mkdir(parents=True, exist_ok=True)
    for name, ranks in systems.items():
        rows = []
        for qid, where in zip(MANY, ranks, strict=True):
            order = DOCUMENTS[1:][: where - 1] + ["d1"] + DOCUMENTS[1:][where - 1 :]
            rows += [{"qid": qid, "docno": d, "rank": k, "score": 10.0 - k} for k, d in enumerate(order)]
        pt.io.write_results(pd.DataFrame(rows), str(folder / f"{safe_name(name)}.res.gz"))
    pd.DataFrame({"qid": MANY, "query": MANY}).to_csv(folder / "topics.tsv", sep="\t", index=False)
    pd.DataFrame({"qid": MANY, "docno": "d1", "label": 1}).to_csv(folder / "qrels.tsv", sep="\t", index=False)


def regime_row(regime: str, fraction: float, system: str, seed: int = 1, **extra) -> dict:
    return dict(
        kind="regime",
        regime=regime,
        regime_name=regime.split(":")[0],
        system=system,
        eval_set=EVAL,
        data_fraction=fraction,
        seed=seed,
        **extra,
    )


def claim_1_frame(*rows: dict) -> pd.DataFrame:
    initial = dict(kind="initial", regime=None, system="initial", eval_set=EVAL, data_fraction=None, seed=None)
    return pd.DataFrame([initial, regime_row(REFERENCE, 1.0, FULL), regime_row(SELF, 0.135, SMALL), *rows])


def judge_1(tmp_path, own: list[int], reference: list[int] = GOOD, initial: list[int] = BAD, margin=0.02):
    write_runs(tmp_path, {"initial": initial, FULL: reference, SMALL: own})
    [verdict] = claims.claim_1(claim_1_frame(), tmp_path, REFERENCE, margin, {EVAL: True})
    return verdict


def swapped(ranks: list[int], pairs: int) -> list[int]:
    """``ranks`` with the first ``pairs`` rank-1/rank-2 pairs swapped: the same mean, small per-query noise."""
    out = list(ranks)
    for k in range(pairs):
        out[2 * k], out[2 * k + 1] = out[2 * k + 1], out[2 * k]
    return out


def test_claim_1_supported_by_equivalence(tmp_path):
    """Same mean as the reference with little per-query noise: TOST rejects non-equivalence within 0.02."""
    verdict = judge_1(tmp_path, swapped(GOOD, 1))
    assert verdict.verdict == "supported" and "equivalent within ±0.02" in verdict.reason
    assert verdict.in_domain is True
    assert any(line.startswith("(c) TOST") for line in verdict.evidence)


def test_claim_1_equivalence_needs_a_wide_enough_margin(tmp_path):
    """The same data with a margin of 0.001 cannot show equivalence (and is not better): not supported."""
    verdict = judge_1(tmp_path, swapped(GOOD, 1), margin=0.001)
    assert verdict.verdict == "not supported" and "neither equivalent within ±0.001" in verdict.reason


def test_claim_1_supported_by_superiority(tmp_path):
    """Better than the reference on many queries: not equivalent within 0.02, but significantly better."""
    verdict = judge_1(tmp_path, [1] * 60)
    assert verdict.verdict == "supported" and "significantly better than" in verdict.reason


def test_claim_1_inconclusive_when_the_yardstick_is_no_better_than_no_training(tmp_path):
    """The reference equals the untrained encoder: inconclusive, whatever self-distillation scores."""
    verdict = judge_1(tmp_path, BAD, reference=BAD)
    assert verdict.verdict == "inconclusive"
    assert verdict.reason.startswith("the yardstick is no better than no training")
    assert "0.3869 vs initial 0.3869" in verdict.reason


def test_claim_1_not_supported_when_self_distillation_learned_nothing(tmp_path):
    """Self-distillation equal to the untrained encoder: the guard (b) stops it, whatever (c) would say."""
    verdict = judge_1(tmp_path, BAD, reference=GOOD, initial=BAD)
    assert verdict.verdict == "not supported" and "not significantly better than no training" in verdict.reason


def test_claim_1_not_supported_when_worse(tmp_path):
    verdict = judge_1(tmp_path, [2] * 60)
    assert verdict.verdict == "not supported" and "neither equivalent" in verdict.reason


def test_claim_1_averages_each_query_over_seeds(tmp_path):
    """Two seeds, one at rank 1 and one at rank 2 everywhere: their per-query average is the reference's mixture
    only on average, and the test uses the per-query mean (0.8155 for every query)."""
    second = f"{SELF} f=0.135 seed=2"
    write_runs(tmp_path, {"initial": BAD, FULL: GOOD, SMALL: [1] * 60, second: [2] * 60})
    frame = claim_1_frame(regime_row(SELF, 0.135, second, seed=2))
    [verdict] = claims.claim_1(frame, tmp_path, REFERENCE, 0.02)
    assert "per-query scores averaged over 2 seeds" in verdict.evidence[0]
    assert "0.8155 vs 0.8155" in verdict.evidence[4]


def test_claim_1_not_testable_without_the_full_reference(tmp_path):
    frame = claim_1_frame()
    frame = frame[frame["system"] != FULL]
    [verdict] = claims.claim_1(frame, tmp_path, REFERENCE, 0.02)
    assert verdict.verdict == "inconclusive" and verdict.reason.startswith("not testable in this run")
    assert verdict.eval_set == ""


TUNED = f"{SELF}:target=0.1|0.2|0.3|0.4|0.5|0.6|0.7|0.8|0.9|1.0"
STATIC = f"{TUNED} f=0.135 seed=1"


def claim_2_frame(
    tune_wall=800.0, static_to_best=300.0, static_examples=2000, grid="target=0.1|0.2|0.3|0.4|0.5|0.6|0.7|0.8|0.9|1.0"
):
    common = dict(examples_budget=1000, examples_consumed=1000)
    static = regime_row(
        TUNED,
        0.135,
        STATIC,
        charged_wall_s=90.0,
        charged_energy_kwh=0.009,
        train_wall_to_best_s=static_to_best,
        examples_at_best=static_examples,
        tune_grid=grid,
        tune_points=10,
        tune_selected="target=0.3",
        tune_wall_s=tune_wall,
        tune_energy_kwh=tune_wall / 10000,
        **common,
    )
    adaptive = regime_row(
        SELF,
        0.135,
        SMALL,
        charged_wall_s=100.0,
        charged_energy_kwh=0.01,
        train_wall_to_best_s=60.0,
        examples_at_best=600,
        **common,
    )
    initial = dict(kind="initial", regime=None, system="initial", eval_set=EVAL, data_fraction=None, seed=None)
    return pd.DataFrame([initial, static, adaptive])


def judge_2(tmp_path, frame, own=GOOD, static=GOOD, curves_frame=None):
    write_runs(tmp_path, {"initial": BAD, STATIC: static, SMALL: own})
    empty = pd.DataFrame(columns=CURVE_COLUMNS)
    return claims.claim_2(frame, empty if curves_frame is None else curves_frame, tmp_path, REFERENCE)


def test_claim_2_not_testable_without_a_static_search(tmp_path):
    frame = claim_2_frame()
    [verdict], ratios = judge_2(tmp_path, frame[frame["system"] != STATIC].drop(columns=["tune_grid"]))
    assert verdict.verdict == "inconclusive" and not ratios
    assert verdict.reason.startswith("not testable in this run: no static-margin search (add --tune")


def test_claim_2_needs_a_numeric_grid_over_target(tmp_path):
    """A tuned self-distillation over target=adaptive|distributed is not the static margin's search."""
    [verdict], _ = judge_2(tmp_path, claim_2_frame(grid="target=adaptive|distributed"))
    assert verdict.reason.startswith("not testable in this run: no static-margin search")


def test_claim_2_supported(tmp_path):
    """(a) 800 / 100 = 8x, (b) 300 / 60 = 5x, neither a data ratio; same effectiveness; better than no training."""
    [verdict], ratios = judge_2(tmp_path, claim_2_frame())
    assert verdict.verdict == "supported", verdict.reason
    search, _, convergence = ratios
    assert search.value == pytest.approx(8.0) and convergence.value == pytest.approx(5.0)
    assert "whole static search" in search.text() and "adaptive self-distillation" in search.text()
    assert "2000 examples seen at its best" in convergence.text()
    assert "this is the data ratio" not in search.text() + convergence.text()


def test_claim_2_flags_a_ratio_that_is_the_data_ratio(tmp_path):
    """10 grid points on the same budget costing 10x (within 5%) and convergence at 3.33x the examples: both
    restate data sizes, and say so."""
    [verdict], ratios = judge_2(tmp_path, claim_2_frame(tune_wall=1030.0, static_to_best=200.0))
    search, energy, convergence = ratios
    assert search.text().endswith(
        "this is the data ratio, not a speedup (examples budgets, grid points x static "
        "budget / adaptive budget = 10.00)"
    )
    assert "this is the data ratio, not a speedup" in energy.text()
    assert "this is the data ratio, not a speedup (examples seen at best, static / adaptive = 3.33)" in (
        convergence.text()
    )
    assert not claims.Ratio("x", "a", 1100.0, "b", 100.0, data_ratios=(("d", 10.0),)).restates  # 10% off


def test_claim_2_not_supported_when_convergence_is_below_3x(tmp_path):
    [verdict], _ = judge_2(tmp_path, claim_2_frame(static_to_best=120.0))
    assert verdict.verdict == "not supported"
    assert verdict.reason == "(a) 8.00x and (b) 2.00x; both must be at least 3x"


def test_claim_2_not_supported_when_the_adaptive_model_is_worse(tmp_path):
    [verdict], _ = judge_2(tmp_path, claim_2_frame(), own=[2] * 60, static=[1] * 60)
    assert verdict.verdict == "not supported" and "significantly worse than the static one at target=0.3" in (
        verdict.reason
    )


def test_claim_2_never_supported_without_learning(tmp_path):
    """Fast and as good as the static model, but both equal the untrained encoder: not supported."""
    [verdict], _ = judge_2(tmp_path, claim_2_frame(), own=BAD, static=BAD)
    assert verdict.verdict == "not supported" and "not significantly better than no training" in verdict.reason


def test_claim_2_time_to_the_reference_best(tmp_path, curves):
    """(c): the reference needs 200 s (640 examples) to its best; self-distillation at 0.135 reaches it at 40 s
    (320 examples) in seed 1: 5x; seed 1 only (the frame's other seeds are dropped)."""
    one = curves[curves["seed"] == 1]
    _, ratios = judge_2(tmp_path, claim_2_frame(), curves_frame=one)
    beyond = ratios[-1]
    assert beyond.label.startswith("(c) beyond the paper")
    assert beyond.value == pytest.approx(5.0)
    assert "(640 examples)" in beyond.text() and "(320 examples)" in beyond.text()


def test_only_in_domain():
    supported = claims.Verdict("1", "a", "supported", "", [], in_domain=True)
    failed_outside = claims.Verdict("1", "vaswani", "not supported", "", [], in_domain=False)
    assert "no out-of-domain evaluation set" in claims.only_in_domain([supported])
    assert "not supported out of domain on vaswani (not supported)" in claims.only_in_domain(
        [supported, failed_outside]
    )
    both = claims.Verdict("1", "vaswani", "supported", "", [], in_domain=False)
    assert claims.only_in_domain([supported, both]) is None
    assert claims.only_in_domain([failed_outside]) is None


def test_seed_spread_is_set_against_the_difference_judged():
    """Two seeds per side: each side's sd of nDCG@10, and how many of the largest sd the difference is."""
    own = pd.DataFrame({"eval_set": [EVAL, EVAL, "other"], "nDCG@10": [0.60, 0.62, 0.1]})
    ref = pd.DataFrame({"eval_set": [EVAL, EVAL], "nDCG@10": [0.64, 0.68]})
    text = claims.seed_spread((("a", own), ("b", ref)), EVAL, -0.05)
    assert "a sd 0.0141 over 2 seeds" in text and "b sd 0.0283 over 2 seeds" in text
    assert "-0.0500, is 1.8x the largest sd" in text


def test_seed_spread_of_one_seed_is_not_measured():
    one = pd.DataFrame({"eval_set": [EVAL], "nDCG@10": [0.6]})
    assert "not measured" in claims.seed_spread((("a", one), ("b", one)), EVAL, 0.01)


def test_validation_agreement_is_the_rank_correlation_of_validation_and_test():
    """Validation ordering the cells exactly against the test gives -1; fewer than 3 cells is not measurable."""
    frame = pd.DataFrame(
        {
            "kind": ["regime"] * 4 + ["initial"],
            "eval_set": [EVAL, EVAL, EVAL, "other", EVAL],
            "best_validation_ndcg10": [0.70, 0.75, 0.80, 0.7, None],
            "nDCG@10": [0.66, 0.64, 0.61, 0.6, 0.65],
        }
    )
    by_set = {a.eval_set: a for a in claims.validation_agreement(frame)}
    assert by_set[EVAL].spearman == pytest.approx(-1.0) and by_set[EVAL].cells == 3
    assert math.isnan(by_set["other"].spearman) and "not measurable" in by_set["other"].text()
