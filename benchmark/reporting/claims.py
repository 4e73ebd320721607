"""The measures behind the paper's two claims, computed from a run's saved files.

- Time-to-target: from curves.csv, the training wall-clock and examples a regime needs until its validation
  nDCG@10 first reaches the reference regime's best validation nDCG@10 (the reference at its largest data
  fraction, same seed); speedup = the reference's time to its best / the regime's time to that value.
- Data efficiency: the smallest fraction at which a regime's test nDCG@10 is within a tolerance of the
  reference at fraction 1.0, with a paired t-test through ``pt.Experiment`` on the saved run files,
  Holm-corrected over the regime's fractions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class TimeToTarget:
    regime: str
    data_fraction: float
    seed: int
    target: float  # the reference's best validation nDCG@10
    reached: bool
    wall_s: float  # training wall-clock until the target was first reached (validation excluded)
    examples: int
    reference_wall_to_best_s: float
    speedup: float  # reference_wall_to_best_s / wall_s
    reference_examples_to_best: int = -1  # examples the reference had seen when it first reached its best


def time_to_target(curves: pd.DataFrame, reference: str) -> list[TimeToTarget]:
    """For every (regime, fraction, seed) curve, when it first reaches the reference's best validation score."""
    rows: list[TimeToTarget] = []
    for seed, by_seed in curves.groupby("seed"):
        ref = by_seed[by_seed["regime"] == reference]
        if ref.empty:
            continue
        ref = ref[ref["data_fraction"] == ref["data_fraction"].max()].sort_values("step")
        trained = ref[ref["step"] > 0]
        if trained.empty:
            continue
        target = float(trained["ndcg_at_10"].max())
        first_best = trained[trained["ndcg_at_10"] >= target].iloc[0]
        ref_time, ref_examples = float(first_best["elapsed_s"]), int(first_best["examples_seen"])
        for (regime, fraction), curve in by_seed.groupby(["regime", "data_fraction"]):
            curve = curve[curve["step"] > 0].sort_values("step")
            hit = curve[curve["ndcg_at_10"] >= target - 1e-12]
            reached = not hit.empty
            wall = float(hit["elapsed_s"].iloc[0]) if reached else math.nan
            rows.append(
                TimeToTarget(
                    regime=str(regime),
                    data_fraction=float(fraction),
                    seed=int(seed),
                    target=target,
                    reached=reached,
                    wall_s=wall,
                    examples=int(hit["examples_seen"].iloc[0]) if reached else -1,
                    reference_wall_to_best_s=ref_time,
                    speedup=ref_time / wall if reached and wall > 0 else math.nan,
                    reference_examples_to_best=ref_examples,
                )
            )
    return rows


@dataclass
class DataEfficiency:
    regime: str
    eval_set: str
    reference_ndcg: float  # the reference at fraction 1.0, mean over seeds
    fractions: list[tuple[float, float, float]]  # (fraction, mean nDCG@10, Holm-corrected p vs reference)
    smallest_within: float | None  # smallest fraction within tolerance and not significantly worse
    tolerance: float


def mean_ndcg(results: pd.DataFrame, regime: str, fraction: float, eval_set: str) -> float:
    rows = results[
        (results["regime"] == regime) & (results["data_fraction"] == fraction) & (results["eval_set"] == eval_set)
    ]
    return float(rows["nDCG@10"].mean()) if not rows.empty else math.nan


def paired_tests(
    run_dir: Path, eval_set: str, baseline: str, systems: Sequence[str], qrels: pd.DataFrame, topics: pd.DataFrame
) -> dict[str, float]:
    """Holm-corrected p-values of pt.Experiment's paired t-test of each system's saved run against the baseline."""
    import pyterrier as pt
    from ir_measures import nDCG

    from benchmark.evaluation.systems import safe_name

    folder = run_dir / "runs" / safe_name(eval_set)
    runs = [pt.io.read_results(str(folder / f"{safe_name(name)}.res.gz")) for name in (baseline, *systems)]
    table = pt.Experiment(
        runs,
        topics,
        qrels,
        eval_metrics=[nDCG @ 10],
        names=[baseline, *systems],
        baseline=0,
        test="t",
        correction="holm",
        verbose=False,
    )
    column = "nDCG@10 p-value corrected"
    return {row["name"]: float(row[column]) for _, row in table.iloc[1:].iterrows()}


def data_efficiency(
    results: pd.DataFrame,
    reference: str,
    tolerance: float,
    significance: dict[tuple[str, str], dict[float, float]] | None = None,
    alpha: float = 0.05,
) -> list[DataEfficiency]:
    """Per regime and evaluation set, the smallest fraction whose mean test nDCG@10 is no more than
    ``tolerance`` below the reference at 1.0 and is not significantly worse (when p-values are given)."""
    out = []
    regimes = results[results["kind"] == "regime"]
    for eval_set in regimes["eval_set"].unique():
        reference_ndcg = mean_ndcg(regimes, reference, 1.0, eval_set)
        for regime in sorted(set(regimes["regime"])):  # the reference too: how little of its own data it needs
            fractions = sorted(set(regimes[(regimes["regime"] == regime)]["data_fraction"]))
            points, smallest = [], None
            p_values = (significance or {}).get((regime, eval_set), {})
            for fraction in fractions:
                score = mean_ndcg(regimes, regime, fraction, eval_set)
                p_value = p_values.get(fraction, math.nan)
                points.append((fraction, score, p_value))
                worse_significantly = (not math.isnan(p_value)) and p_value < alpha and score < reference_ndcg
                if smallest is None and score >= reference_ndcg - tolerance and not worse_significantly:
                    smallest = fraction
            out.append(DataEfficiency(regime, eval_set, reference_ndcg, points, smallest, tolerance))
    return out


# --- verdicts: the rules that decide each claim, per evaluation set ------------------------------------------------
SELF = "self-distillation"
INITIAL = "initial"
PAPER_FRACTION = 0.135
PAPER_SPEEDUP = (3.0, 15.0)
DEFAULT_MARGIN = 0.02
DATA_RATIO_SLACK = 0.05  # a ratio within 5% of a ratio of data sizes restates the data sizes
STATIC_GRID = "|".join(f"{v / 10:.1f}" for v in range(1, 11))
TUNE_HINT = f'add --tune "{SELF}:target={STATIC_GRID}"'


@dataclass
class Verdict:
    claim: str  # "1" or "2"
    eval_set: str  # "" when the run cannot test the claim at all
    verdict: str  # "supported", "not supported" or "inconclusive"
    reason: str
    evidence: list[str]
    in_domain: bool | None = None  # from leakage.json; None when unknown

    def row(self) -> dict:
        return {
            "claim": self.claim,
            "eval_set": self.eval_set,
            "verdict": self.verdict,
            "reason": self.reason,
            "in_domain": "" if self.in_domain is None else self.in_domain,
            "evidence": " | ".join(self.evidence),
        }


def regime_rows(results: pd.DataFrame, regime: str, fraction: float) -> pd.DataFrame:
    """Rows of a regime (by label, else by name, as the speedups match the reference) at one fraction."""
    rows = results[results["kind"] == "regime"]
    mine = rows[rows["regime"] == regime]
    if mine.empty and "regime_name" in rows:
        mine = rows[rows["regime_name"] == regime]
    return mine[mine["data_fraction"].astype(float) == fraction]


def _systems(rows: pd.DataFrame, eval_set: str) -> list[str]:
    return list(rows[rows["eval_set"] == eval_set]["system"])


def _seeds(systems: Sequence[str]) -> str:
    return "one seed" if len(systems) == 1 else f"per-query scores averaged over {len(systems)} seeds"


def seed_spread(sides: Sequence[tuple[str, pd.DataFrame]], eval_set: str, difference: float) -> str:
    """How much nDCG@10 moves between seeds on each side, against the difference the verdict judges: a difference
    within the seeds' spread says more about the seed than about the regime."""
    parts, spreads = [], []
    for name, rows in sides:
        own = rows[rows["eval_set"] == eval_set]
        values = pd.to_numeric(own["nDCG@10"], errors="coerce").dropna() if "nDCG@10" in own else own.iloc[0:0]
        if len(values) < 2:
            parts.append(f"{name} one seed (spread not measured)")
            continue
        spreads.append(float(values.std(ddof=1)))
        parts.append(f"{name} sd {spreads[-1]:.4f} over {len(values)} seeds")
    if not spreads:
        return f"seed spread: not measured (one seed per side; `--seeds 1,2,3` measures it); {'; '.join(parts)}"
    largest = max(spreads)
    scale = f"{abs(difference) / largest:.1f}x the largest sd" if largest > 0 else "the seeds agree exactly"
    return f"seed spread of nDCG@10: {'; '.join(parts)}; the difference judged, {difference:+.4f}, is {scale}"


@dataclass
class Agreement:
    """How well validation ranks the trained cells as the test does, on one evaluation set."""

    eval_set: str
    cells: int
    spearman: float  # NaN with fewer than 3 cells or constant scores
    p_value: float

    def text(self) -> str:
        if math.isnan(self.spearman):
            return f"{self.eval_set}: not measurable ({self.cells} trained cells; at least 3 with distinct scores)"
        return (
            f"{self.eval_set}: Spearman rank correlation {self.spearman:+.3f} (p = {self.p_value:.3g}) between best "
            f"validation nDCG@10 and test nDCG@10 over {self.cells} trained cells"
        )


def validation_agreement(results: pd.DataFrame) -> list[Agreement]:
    """Per evaluation set, the rank correlation of the cells' best validation and test nDCG@10: validation selects
    checkpoints and search points, so a validation that orders the cells unlike the test misleads both."""
    from scipy.stats import spearmanr

    rows = results[results["kind"] == "regime"]
    found = []
    for eval_set, own in rows.groupby("eval_set"):
        pairs = own[["best_validation_ndcg10", "nDCG@10"]].apply(pd.to_numeric, errors="coerce").dropna()
        rho, p = math.nan, math.nan
        if len(pairs) >= 3 and pairs.nunique().min() > 1:
            result = spearmanr(pairs["best_validation_ndcg10"], pairs["nDCG@10"])
            rho, p = float(result.statistic), float(result.pvalue)
        found.append(Agreement(str(eval_set), len(pairs), rho, p))
    return found


def claim_1(
    results: pd.DataFrame, run_dir: Path, reference: str, margin: float, in_domain: dict[str, bool] | None = None
) -> list[Verdict]:
    """Self-distillation at 13.5% of the data matches the reference at 100%, per evaluation set:
    (a) the reference at 1.0 beats the untrained encoder (else inconclusive: no yardstick), (b) self-distillation
    at 0.135 beats it, (c) TOST equivalence within ``margin`` against the reference, or one-sided superiority."""
    from benchmark.evaluation import significance as paired

    mine, theirs = regime_rows(results, SELF, PAPER_FRACTION), regime_rows(results, reference, 1.0)
    if mine.empty or theirs.empty:
        need = [f"{SELF} at {PAPER_FRACTION}"] * mine.empty + [f"{reference} at 1.0"] * theirs.empty
        reason = f"not testable in this run: it lacks {' and '.join(need)} (`--reference-fraction 1.0` trains it)"
        return [Verdict("1", "", "inconclusive", reason, [])]
    verdicts = []
    for eval_set in sorted(set(mine["eval_set"]) & set(theirs["eval_set"])):
        domain = (in_domain or {}).get(eval_set)
        if not paired.has_runs(run_dir, eval_set):
            verdicts.append(Verdict("1", eval_set, "inconclusive", "no saved run files to test on", [], domain))
            continue
        own, ref = _systems(mine, eval_set), _systems(theirs, eval_set)
        scores = paired.per_query_ndcg(run_dir, eval_set, [*own, *ref, INITIAL])
        a, b, initial = paired.side(scores, own), paired.side(scores, ref), paired.side(scores, [INITIAL])
        yardstick = paired.superiority(b, initial, f"(a) one-sided paired t-test, {reference} at 1.0 > {INITIAL}")
        trained = paired.superiority(a, initial, f"(b) one-sided paired t-test, {SELF} at {PAPER_FRACTION} > {INITIAL}")
        tost = paired.equivalence(a, b, margin)
        better = paired.superiority(
            a, b, f"(c) one-sided paired t-test, {SELF} at {PAPER_FRACTION} > {reference} at 1.0"
        )
        evidence = [
            f"{SELF} {_seeds(own)}, {reference} {_seeds(ref)}",
            yardstick.text(),
            trained.text(),
            "(c) " + tost.text(),
            better.text(),
            seed_spread(((f"{SELF}", mine), (f"{reference} at 1.0", theirs)), eval_set, a.mean() - b.mean()),
        ]
        if not yardstick.rejects:
            verdict, reason = (
                "inconclusive",
                (
                    f"the yardstick is no better than no training: {reference} at 1.0 {b.mean():.4f} vs {INITIAL} "
                    f"{initial.mean():.4f}, p = {yardstick.p_value:.4g}"
                ),
            )
        elif not trained.rejects:
            verdict, reason = (
                "not supported",
                (
                    f"{SELF} at {PAPER_FRACTION} is not significantly better than no training ({a.mean():.4f} vs "
                    f"{initial.mean():.4f}, p = {trained.p_value:.4g})"
                ),
            )
        elif tost.rejects:
            verdict, reason = "supported", f"equivalent within ±{margin:g} nDCG@10 (TOST p = {tost.p_value:.4g})"
        elif better.rejects:
            verdict, reason = "supported", f"significantly better than {reference} at 1.0 (p = {better.p_value:.4g})"
        else:
            verdict, reason = (
                "not supported",
                (
                    f"neither equivalent within ±{margin:g} (TOST p = {tost.p_value:.4g}) nor significantly better "
                    f"(p = {better.p_value:.4g}); difference {a.mean() - b.mean():+.4f}"
                ),
            )
        verdicts.append(Verdict("1", eval_set, verdict, reason, evidence, domain))
    return verdicts


CLAIM_1_RULE = (
    "Rule (per evaluation set, on per-query nDCG@10 of the saved runs, each query averaged over seeds first): "
    f"the claim holds only when (a) {{reference}} at 1.0 is significantly better than the untrained encoder "
    f"(one-sided paired t-test, p < 0.05; otherwise **inconclusive**: the yardstick is no better than no "
    f"training), (b) {SELF} at {PAPER_FRACTION} is significantly better than the untrained encoder (otherwise "
    f"**not supported**), and (c) {SELF} at {PAPER_FRACTION} is equivalent to {{reference}} at 1.0 by two "
    f"one-sided paired t-tests (TOST, p < 0.05) within ±{{margin:g}} nDCG@10 (`--equivalence-margin`), or "
    "significantly better than it (one-sided paired t-test, p < 0.05). All must hold, so no multiple-testing "
    f"correction is needed (an intersection-union test). Margin default {DEFAULT_MARGIN}: with a few hundred test "
    "queries the standard error of a paired nDCG@10 difference is typically about 0.01, so a TOST can only ever show "
    "equivalence for margins above roughly 0.017; 0.01 could not be shown on SciFact-sized sets, while 0.02 is "
    "still smaller than the gains training brings over the untrained encoder that (a) and (b) demand."
)


@dataclass
class Ratio:
    """A cost ratio, labelled with what it divides; flagged when it only restates a ratio of data sizes."""

    label: str
    numerator: str
    numerator_value: float
    denominator: str
    denominator_value: float
    unit: str = "s"
    data_ratios: tuple[tuple[str, float], ...] = ()  # (what, ratio of data sizes) of the same two sides

    @property
    def value(self) -> float:
        valid = self.denominator_value > 0 and not math.isnan(self.numerator_value)
        return self.numerator_value / self.denominator_value if valid else math.nan

    @property
    def restates(self) -> str | None:
        """The data ratio this ratio is within 5% of, if any."""
        for what, ratio in self.data_ratios:
            if ratio > 0 and not math.isnan(self.value) and abs(self.value / ratio - 1) <= DATA_RATIO_SLACK:
                return f"{what} = {ratio:.2f}"
        return None

    def text(self) -> str:
        value = "n/a" if math.isnan(self.value) else f"**{self.value:.2f}x**"
        line = (
            f"{self.label}: {self.numerator} {self.numerator_value:.4g} {self.unit} / {self.denominator} "
            f"{self.denominator_value:.4g} {self.unit} = {value}"
        )
        restated = self.restates
        return line + (f" — this is the data ratio, not a speedup ({restated})" if restated else "")


def _grid_values(row: pd.Series) -> list[str]:
    """The values a tuned system's search tried for ``target`` (from tune_grid, else from its label)."""
    import re

    for text in (str(row.get("tune_grid", "")), str(row.get("regime", ""))):
        found = re.search(r"target\s*[=:]\s*\[?\s*([^;,\s\]]+(?:\s*[|,]\s*[0-9.eE+-]+)*)", text)
        if found:
            return [v.strip() for v in re.split(r"[|,]", found.group(1)) if v.strip()]
    return []


def _numeric(values: Sequence[str]) -> bool:
    try:
        return bool(values) and all(math.isfinite(float(v)) for v in values)
    except ValueError:
        return False


def static_search(results: pd.DataFrame) -> pd.DataFrame:
    """Rows of the tuned system that searched self-distillation's static margin (a numeric grid over target)."""
    rows = results[results["kind"] == "regime"]
    if "tune_grid" not in rows or rows.empty:
        return rows.iloc[0:0]
    tuned = rows[rows["tune_grid"].notna() & (rows["tune_grid"].astype(str) != "")]
    names = tuned["regime_name"] if "regime_name" in tuned else tuned["regime"].str.split(":").str[0]
    tuned = tuned[names == SELF]
    keep = [index for index, row in tuned.iterrows() if _numeric(_grid_values(row))]
    return tuned.loc[keep]


def _divide(numerator: float, denominator: float) -> float:
    """A ratio, NaN where the denominator is not positive (e.g. a best at step 0: no examples, no time)."""
    return numerator / denominator if denominator > 0 else math.nan


def _mean(rows: pd.DataFrame, column: str) -> float:
    if column not in rows or rows.empty:
        return math.nan
    return float(pd.to_numeric(rows[column], errors="coerce").mean())


def claim_2(
    results: pd.DataFrame,
    curves: pd.DataFrame,
    run_dir: Path,
    reference: str,
    in_domain: dict[str, bool] | None = None,
) -> tuple[list[Verdict], list[Ratio]]:
    """Adaptive self-distillation against its static-margin variant, whose margin must be searched: (a) search
    cost, (b) convergence, (c) time to the reference's best validation; verdicts per evaluation set."""
    from benchmark.evaluation import significance as paired

    search = static_search(results)
    adaptive_all = results[(results["kind"] == "regime") & (results["regime"] == SELF)]
    common = sorted(set(search["data_fraction"].astype(float)) & set(adaptive_all["data_fraction"].astype(float)))
    if search.empty or not common:
        missing = (
            f"no static-margin search ({TUNE_HINT})"
            if search.empty
            else (f"the static-margin search and {SELF} share no data fraction; train both on the same budget")
        )
        return [Verdict("2", "", "inconclusive", f"not testable in this run: {missing}", [])], []
    fraction = PAPER_FRACTION if PAPER_FRACTION in common else common[-1]
    static = search[search["data_fraction"].astype(float) == fraction]
    adaptive = adaptive_all[adaptive_all["data_fraction"].astype(float) == fraction]
    first = static["eval_set"].iloc[0]
    static_1, adaptive_1 = static[static["eval_set"] == first], adaptive[adaptive["eval_set"] == first]
    label = str(static_1["regime"].iloc[0])
    selected = str(static_1["tune_selected"].iloc[0]) if "tune_selected" in static_1 else "?"
    points = _mean(static_1, "tune_points")
    if math.isnan(points):
        points = float(len(_grid_values(static_1.iloc[0])))
    budget_ratio = _divide(points * _mean(static_1, "examples_budget"), _mean(adaptive_1, "examples_budget"))
    search_data = (("examples budgets, grid points x static budget / adaptive budget", budget_ratio),)
    ratios = [
        Ratio(
            f"(a) search cost at fraction {fraction:g}",
            f"whole static search ({label}, {points:g} points, charged wall-clock)",
            _mean(static_1, "tune_wall_s"),
            f"adaptive {SELF} (charged wall-clock)",
            _mean(adaptive_1, "charged_wall_s"),
            data_ratios=search_data,
        ),
        Ratio(
            "(a) search cost, energy",
            "whole static search",
            _mean(static_1, "tune_energy_kwh"),
            f"adaptive {SELF}",
            _mean(adaptive_1, "charged_energy_kwh"),
            unit="kWh",
            data_ratios=search_data,
        ),
        Ratio(
            f"(b) convergence at fraction {fraction:g}",
            f"static at its selected {selected}: training time to best validation "
            f"({_mean(static_1, 'examples_at_best'):.0f} examples seen at its best)",
            _mean(static_1, "train_wall_to_best_s"),
            f"adaptive {SELF}: training time to best validation ({_mean(adaptive_1, 'examples_at_best'):.0f} "
            "examples seen at its best)",
            _mean(adaptive_1, "train_wall_to_best_s"),
            data_ratios=(
                (
                    "examples seen at best, static / adaptive",
                    _divide(_mean(static_1, "examples_at_best"), _mean(adaptive_1, "examples_at_best")),
                ),
            ),
        ),
    ]
    reached = [t for t in time_to_target(curves, reference) if t.regime == SELF and t.data_fraction == fraction]
    if reached and all(t.reached for t in reached):
        ref_examples = sum(t.reference_examples_to_best for t in reached) / len(reached)
        own_examples = sum(t.examples for t in reached) / len(reached)
        ratios.append(
            Ratio(
                "(c) beyond the paper: time to the reference's best validation nDCG@10",
                f"{reference} at its largest fraction, to its best ({ref_examples:.0f} examples)",
                sum(t.reference_wall_to_best_s for t in reached) / len(reached),
                f"{SELF} at {fraction:g}, to the same value ({own_examples:.0f} examples)",
                sum(t.wall_s for t in reached) / len(reached),
                data_ratios=(("examples needed, reference / self-distillation", _divide(ref_examples, own_examples)),),
            )
        )
    elif reached:
        ratios.append(
            Ratio(
                f"(c) beyond the paper: {SELF} at {fraction:g} did not reach {reference}'s best validation "
                f"nDCG@10 ({reached[0].target:.4f}) in every seed",
                reference,
                reached[0].reference_wall_to_best_s,
                SELF,
                math.nan,
            )
        )
    search_cost, convergence = ratios[0].value, ratios[2].value
    fast = all(not math.isnan(v) and v >= PAPER_SPEEDUP[0] for v in (search_cost, convergence))
    speed_text = f"(a) {search_cost:.2f}x and (b) {convergence:.2f}x"
    verdicts = []
    for eval_set in sorted(set(static["eval_set"]) & set(adaptive["eval_set"])):
        domain = (in_domain or {}).get(eval_set)
        if not paired.has_runs(run_dir, eval_set):
            verdicts.append(Verdict("2", eval_set, "inconclusive", "no saved run files to test on", [], domain))
            continue
        own, theirs = _systems(adaptive, eval_set), _systems(static, eval_set)
        scores = paired.per_query_ndcg(run_dir, eval_set, [*own, *theirs, INITIAL])
        a, s, initial = paired.side(scores, own), paired.side(scores, theirs), paired.side(scores, [INITIAL])
        worse = paired.superiority(s, a, f"one-sided paired t-test, static ({selected}) > adaptive {SELF}")
        trained = paired.superiority(a, initial, f"one-sided paired t-test, adaptive {SELF} > {INITIAL}")
        evidence = [
            f"{SELF} {_seeds(own)}, static search {_seeds(theirs)}",
            *(r.text() for r in ratios),
            worse.text(),
            trained.text(),
            seed_spread(((SELF, adaptive), (f"static ({selected})", static)), eval_set, a.mean() - s.mean()),
        ]
        if not trained.rejects:
            verdict, reason = (
                "not supported",
                (f"{SELF} is not significantly better than no training (p = {trained.p_value:.4g})"),
            )
        elif worse.rejects:
            verdict, reason = (
                "not supported",
                (
                    f"the adaptive model is significantly worse than the static one at {selected} "
                    f"(p = {worse.p_value:.4g}): the speedup buys less effectiveness"
                ),
            )
        elif not fast:
            verdict, reason = "not supported", f"{speed_text}; both must be at least {PAPER_SPEEDUP[0]:g}x"
        else:
            verdict, reason = "supported", f"{speed_text}, and the adaptive model is not significantly worse"
        verdicts.append(Verdict("2", eval_set, verdict, reason, evidence, domain))
    return verdicts, ratios


CLAIM_2_RULE = (
    f"Rule: the paper compares against parametrized losses, i.e. {SELF}'s static margin (`target=<float>`), "
    f"whose margin must be searched (the authors' grid {STATIC_GRID.replace('|', ', ')}, `--tune`, selected on "
    f"validation). The claim holds (per evaluation set) only when (a) the whole static search's charged wall-clock "
    f"/ the adaptive run's and (b) the static variant's training time to its best validation (at the selected "
    f"margin) / the adaptive run's are both at least {PAPER_SPEEDUP[0]:g}x (the paper's lower end; more is "
    f"faster still), the adaptive model is not significantly worse than the selected static one (one-sided "
    f"paired t-test on per-query test nDCG@10, p < 0.05), and {SELF} is significantly better than the untrained "
    "encoder (claim 1's guard (b)), so a run that learned nothing can never pass. (c) is reported, not "
    f"judged. A ratio within {DATA_RATIO_SLACK:.0%} of a ratio of data sizes of the same two sides is flagged: "
    "it restates how much data each side saw."
)


def only_in_domain(verdicts: Sequence[Verdict]) -> str | None:
    """A sentence when a claim is supported on in-domain evaluation sets only (or there is no other)."""
    supported = [v for v in verdicts if v.verdict == "supported"]
    if not supported:
        return None
    outside = [v for v in verdicts if v.in_domain is False]
    if all(v.in_domain for v in supported):
        if not outside:
            return (
                "Holds only in domain: every evaluation set it is supported on shares the training corpus or its "
                "relevant documents; this run has no out-of-domain evaluation set (add `--eval vaswani`)."
            )
        names = ", ".join(f"{v.eval_set} ({v.verdict})" for v in outside)
        return f"Holds only in domain: not supported out of domain on {names}."
    return None
