"""Paired tests on per-query nDCG@10 from a run's saved TREC run files: one-sided superiority and equivalence.

Per-query scores come from ir_measures over runs/<eval set>/<system>.res.gz with the qrels.tsv and topics.tsv
beside them; a query a run retrieved nothing for scores 0. Where a side has several seeds, each query's score is
averaged over its seeds first, so the test is over queries (the unit the paper's claims generalise over), not
over seed x query pairs. Superiority is scipy's one-sided paired t-test; equivalence is two one-sided tests
(TOST, statsmodels' ``ttost_paired``) with a margin in nDCG@10 points.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.evaluation.systems import safe_name

ALPHA = 0.05


@dataclass(frozen=True)
class Test:
    """One test's outcome, with the words the report prints."""

    name: str  # e.g. "one-sided paired t-test, self-distillation > initial"
    statistic: float
    p_value: float
    mean_a: float
    mean_b: float
    queries: int

    @property
    def rejects(self) -> bool:
        """Its null hypothesis is rejected at ALPHA (an undefined test, NaN, rejects nothing)."""
        return not math.isnan(self.p_value) and self.p_value < ALPHA

    def text(self) -> str:
        return (
            f"{self.name}: {self.mean_a:.4f} vs {self.mean_b:.4f} over {self.queries} queries, "
            f"t = {self.statistic:.3f}, p = {self.p_value:.4g}"
        )


def has_runs(run_dir: Path, eval_set: str) -> bool:
    return (run_dir / "runs" / safe_name(eval_set) / "qrels.tsv").exists()


def per_query_ndcg(run_dir: Path, eval_set: str, systems: Sequence[str]) -> pd.DataFrame:
    """nDCG@10 per evaluated query (rows, from topics.tsv) and system (columns), from the saved run files."""
    import ir_measures
    import pyterrier as pt
    from ir_measures import nDCG

    folder = run_dir / "runs" / safe_name(eval_set)
    qrels = pd.read_csv(folder / "qrels.tsv", sep="\t", dtype=str).astype({"label": int})
    topics = pd.read_csv(folder / "topics.tsv", sep="\t", dtype=str)
    qrels = qrels.rename(columns={"qid": "query_id", "docno": "doc_id", "label": "relevance"})
    table = pd.DataFrame(index=pd.Index(topics["qid"], name="qid"))
    for system in dict.fromkeys(systems):
        run = pt.io.read_results(str(folder / f"{safe_name(system)}.res.gz"))
        run = run.rename(columns={"qid": "query_id", "docno": "doc_id"})[["query_id", "doc_id", "score"]]
        run = run.astype({"query_id": str, "doc_id": str})
        scores = {m.query_id: m.value for m in ir_measures.iter_calc([nDCG @ 10], qrels, run)}
        table[system] = [float(scores.get(qid, 0.0)) for qid in table.index]
    return table


def side(scores: pd.DataFrame, systems: Sequence[str]) -> np.ndarray:
    """One side of a comparison: each query's score averaged over the side's systems (its seeds)."""
    return scores[list(systems)].mean(axis=1).to_numpy()


def superiority(a: np.ndarray, b: np.ndarray, name: str) -> Test:
    """H0: mean(a - b) <= 0 against H1: a is better (scipy.stats.ttest_rel, alternative='greater')."""
    from scipy.stats import ttest_rel

    if len(a) < 2:
        return Test(name, math.nan, math.nan, float(np.mean(a)), float(np.mean(b)), len(a))
    with warnings.catch_warnings():  # near-constant differences: scipy warns of precision loss, t is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        result = ttest_rel(a, b, alternative="greater")
    return Test(name, float(result.statistic), float(result.pvalue), float(a.mean()), float(b.mean()), len(a))


@dataclass(frozen=True)
class Equivalence:
    """TOST: both one-sided tests must reject for |mean(a - b)| < margin to be shown."""

    margin: float
    lower: Test  # H0: mean(a - b) <= -margin
    upper: Test  # H0: mean(a - b) >= +margin
    p_value: float  # the larger of the two

    @property
    def rejects(self) -> bool:
        return not math.isnan(self.p_value) and self.p_value < ALPHA

    def text(self) -> str:
        return (
            f"TOST (statsmodels ttost_paired, margin ±{self.margin:g}): {self.lower.mean_a:.4f} vs "
            f"{self.lower.mean_b:.4f} over {self.lower.queries} queries, lower t = {self.lower.statistic:.3f} "
            f"(p = {self.lower.p_value:.4g}), upper t = {self.upper.statistic:.3f} (p = {self.upper.p_value:.4g}), "
            f"p = {self.p_value:.4g}"
        )


def equivalence(a: np.ndarray, b: np.ndarray, margin: float) -> Equivalence:
    """Two one-sided paired t-tests that mean(a - b) lies within (-margin, +margin)."""
    from statsmodels.stats.weightstats import ttost_paired

    mean_a, mean_b = float(np.mean(a)), float(np.mean(b))
    if len(a) < 2:
        nan = Test("lower", math.nan, math.nan, mean_a, mean_b, len(a))
        return Equivalence(margin, nan, nan, math.nan)
    with warnings.catch_warnings():  # identical sides: t is ±inf and p is 0, which is right (exactly equal)
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value, (t_low, p_low, _), (t_up, p_up, _) = ttost_paired(a, b, -margin, margin)
    lower = Test("lower", float(t_low), float(p_low), mean_a, mean_b, len(a))
    upper = Test("upper", float(t_up), float(p_up), mean_a, mean_b, len(a))
    return Equivalence(margin, lower, upper, float(p_value))
