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
        ref_time = float(trained[trained["ndcg_at_10"] >= target]["elapsed_s"].iloc[0])
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

    from benchmark.evaluation import safe_name

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
