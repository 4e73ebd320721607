"""Plots (matplotlib, PNG) of a run: validation over wall-clock, test effectiveness over data fraction, costs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def validation_over_time(curves: pd.DataFrame, path: Path) -> Path:
    """Validation nDCG@10 against training wall-clock, one line per regime x fraction x seed."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for (regime, fraction, seed), curve in curves.groupby(["regime", "data_fraction", "seed"]):
        curve = curve.sort_values("step")
        axes.plot(curve["elapsed_s"], curve["ndcg_at_10"], marker="o", ms=3, label=f"{regime} f={fraction} s={seed}")
    axes.set_xlabel("training wall-clock (s, validation excluded)")
    axes.set_ylabel("validation nDCG@10")
    axes.set_title("Validation effectiveness during training")
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    return _save(figure, path)


def effectiveness_over_fraction(results: pd.DataFrame, path: Path) -> Path:
    """Test nDCG@10 (mean over seeds, bars: std) against data fraction, per regime and evaluation set."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    regimes = results[results["kind"] == "regime"]
    for (eval_set, regime), rows in regimes.groupby(["eval_set", "regime"]):
        stats = rows.groupby("data_fraction")["nDCG@10"].agg(["mean", "std"]).reset_index()
        axes.errorbar(
            stats["data_fraction"],
            stats["mean"],
            yerr=stats["std"].fillna(0),
            marker="o",
            capsize=3,
            label=f"{regime} ({eval_set})",
        )
    for _, row in results[results["kind"].isin(["initial", "bm25", "teacher"])].iterrows():
        axes.axhline(float(row["nDCG@10"]), ls="--", lw=0.8, color="grey")
        axes.annotate(
            f"{row['system'][:30]} ({row['eval_set']})",
            (0.0, float(row["nDCG@10"])),
            fontsize=6,
            xycoords=("axes fraction", "data"),
            va="bottom",
        )
    axes.set_xlabel("data fraction")
    axes.set_ylabel("test nDCG@10")
    axes.set_title("Test effectiveness against training data")
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    return _save(figure, path)


def cost_by_phase(phases: pd.DataFrame, path: Path) -> Path:
    """Wall-clock charged to each regime cell, stacked by phase."""
    charged = phases[phases["charged_to"].fillna("") != ""]
    table = charged.pivot_table(index="cell", columns="phase", values="wall_s", aggfunc="sum").fillna(0.0)
    figure, axes = plt.subplots(figsize=(7, 0.5 + 0.45 * max(1, len(table))))
    if not table.empty:
        table.plot.barh(stacked=True, ax=axes)
    axes.set_xlabel("wall-clock charged (s)")
    axes.set_ylabel("")
    axes.set_title("Cost per regime by phase")
    axes.legend(fontsize=7)
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=120)
    plt.close(figure)
    temporary.replace(path)
    return path
