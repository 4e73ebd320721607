"""report.md: the paper's two claims tested on a run, with the numbers, the test and the costs on each side.

Written at the end of every run and re-rendered by ``python -m benchmark report results/<run-id>`` from the saved
files alone (results.csv, phases.csv, curves.csv, manifest.json, the run files and the qrels beside them).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from benchmark.common.errors import UsageError
from benchmark.common.files import read_json, write_atomic, write_csv
from benchmark.evaluation import leakage
from benchmark.evaluation.systems import safe_name
from benchmark.reporting import claims, model_card, plots
from benchmark.reporting import tables as report

SELF, PAPER_FRACTION, PAPER_SPEEDUP = claims.SELF, claims.PAPER_FRACTION, claims.PAPER_SPEEDUP
CELL_COLUMNS = ("regime", "data_fraction", "seed")  # columns of trained rows the claims select by


def print_verdicts(found: list[claims.Verdict]) -> None:
    """The verdicts on the console, one line each."""
    from rich.markup import escape

    from benchmark.common.progress import console

    for v in found:
        where = f" on {v.eval_set}" if v.eval_set else ""
        console.print(escape(f"Claim {v.claim}{where}: {v.verdict}: {v.reason}"))


def load(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    needed = ["results.csv", "phases.csv", "curves.csv", "manifest.json"]
    missing = [name for name in needed if not (run_dir / name).exists()]
    if missing:
        raise UsageError(f"{run_dir} is not a finished run ({', '.join(missing)} missing); name results/<run-id>")
    results = pd.read_csv(run_dir / "results.csv", dtype={"system": str, "eval_set": str})
    for column in CELL_COLUMNS:  # an evaluation folder of a model (``evaluate``) trained nothing
        if column not in results:
            results[column] = pd.Series(dtype=object if column == "regime" else float)
    phases = pd.read_csv(run_dir / "phases.csv", keep_default_na=False)
    curves = pd.read_csv(run_dir / "curves.csv")
    return results, phases, curves, read_json(run_dir / "manifest.json")


def significance(run_dir: Path, results: pd.DataFrame, reference: str) -> dict:
    """Paired t-tests (pt.Experiment, Holm) of each regime's fractions (the reference's smaller ones too) against
    the reference at 1.0, first seed."""
    out: dict[tuple[str, str], dict[float, float]] = {}
    regimes = results[results["kind"] == "regime"]
    for eval_set, rows in regimes.groupby("eval_set"):
        folder = run_dir / "runs" / safe_name(eval_set)
        if not (folder / "qrels.tsv").exists():
            continue
        seed = rows["seed"].min()
        rows = rows[rows["seed"] == seed]
        baseline = rows[(rows["regime"] == reference) & (rows["data_fraction"] == 1.0)]
        if baseline.empty:
            continue
        qrels = pd.read_csv(folder / "qrels.tsv", sep="\t", dtype=str).astype({"label": int})
        topics = pd.read_csv(folder / "topics.tsv", sep="\t", dtype=str)
        reference_system = baseline["system"].iloc[0]
        for regime, mine in rows[rows["system"] != reference_system].groupby("regime"):  # the reference too
            systems = list(mine.sort_values("data_fraction")["system"])
            p_values = claims.paired_tests(run_dir, eval_set, reference_system, systems, qrels, topics)
            out[(regime, eval_set)] = {
                float(f): p_values.get(name, math.nan)
                for f, name in zip(mine["data_fraction"], mine["system"], strict=True)
            }
    return out


def _cell(results: pd.DataFrame, regime: str, fraction: float) -> pd.DataFrame:
    rows = results[(results["regime"] == regime) & (results["data_fraction"] == fraction)]
    return rows[rows["eval_set"] == rows["eval_set"].iloc[0]] if not rows.empty else rows


def _phases_text(phases: pd.DataFrame, regime_rows: pd.DataFrame) -> str:
    cells = {f"{r['regime']}|f={float(r['data_fraction'])}|seed={int(r['seed'])}" for _, r in regime_rows.iterrows()}
    mine = phases[(phases["cell"].isin(cells)) & (phases["charged_to"] != "")]
    parts = []
    for phase, rows in mine.groupby("phase", sort=False):
        reused = " (reused from cache: original cost)" if rows["reused"].astype(str).eq("True").any() else ""
        parts.append(f"{phase} {rows['wall_s'].astype(float).sum():.1f} s{reused}")
    return ", ".join(parts) or "none"


def _leakage(run_dir: Path) -> dict[str, dict]:
    path = run_dir / leakage.FILE
    return read_json(path) if path.exists() else {}


def _verdict_lines(verdicts: list[claims.Verdict]) -> list[str]:
    lines = []
    for v in verdicts:
        where = f"{v.eval_set}: " if v.eval_set else ""
        lines.append(f"- {where}**{v.verdict}**: {v.reason}.")
        lines += [f"  - {item}" for item in v.evidence]
    note = claims.only_in_domain(verdicts)
    return lines + ([f"- {note}"] if note else [])


def verdicts(results, phases, curves, manifest, run_dir: Path, margin: float) -> tuple[list[str], list]:
    """The two claims' sections of report.md and their verdicts (rows of verdicts.csv)."""
    reference = manifest["config"]["reference"]
    numbers = _leakage(run_dir)
    in_domain = {name: leakage.in_domain(n) for name, n in numbers.items()}
    lines = ["## Verdicts", ""]
    lines.append(f"### Claim 1: {SELF} at {PAPER_FRACTION} of the data matches {reference} at 1.0")
    lines.append("")
    first = claims.claim_1(results, run_dir, reference, margin, in_domain)
    lines += [*_verdict_lines(first), "", claims.CLAIM_1_RULE.format(reference=reference, margin=margin), ""]
    lines.append(
        f"### Claim 2: {SELF} trains {PAPER_SPEEDUP[0]:g}x to {PAPER_SPEEDUP[1]:g}x faster than parametrized losses"
    )
    lines.append("")
    second, ratios = claims.claim_2(results, curves, run_dir, reference, in_domain)
    lines += _verdict_lines(second)
    if ratios:
        for fraction in sorted(set(claims.static_search(results)["data_fraction"].astype(float))):
            mine = _cell(results, SELF, fraction)
            if not mine.empty:
                lines.append(f"- Counted for adaptive {SELF} at {fraction:g}: {_phases_text(phases, mine)}.")
        lines.append(
            "- Charged wall-clock counts each side's own phases (preparation, training, validation; the whole "
            "search for the static side); not counted on either side: shared data preparation, BM25 mining, the "
            "initial encoder's validation, corpus indexing and evaluation."
        )
    lines += ["", claims.CLAIM_2_RULE, ""]
    lines += ["### Leakage between training and evaluation data", ""]
    if numbers:
        lines += [f"- {leakage.describe(name, n)}" for name, n in numbers.items()]
    else:
        lines.append("- Not measured in this run (no leakage.json; runs before this measure).")
    lines.append("")
    return lines, [*first, *second]


def render(run_dir: Path, tolerance: float, margin: float | None = None) -> Path:
    """Write the plots and report.md of a finished run; returns the report's path."""
    results, phases, curves, manifest = load(run_dir)
    reference = manifest["config"]["reference"]
    pictures = {
        "validation-over-time.png": plots.validation_over_time(curves, run_dir / "validation-over-time.png"),
        "effectiveness-over-fraction.png": plots.effectiveness_over_fraction(
            results, run_dir / "effectiveness-over-fraction.png"
        ),
        "cost-by-phase.png": plots.cost_by_phase(phases, run_dir / "cost-by-phase.png"),
    }
    p_values = significance(run_dir, results, reference)
    if margin is None:
        margin = float(manifest["config"].get("equivalence_margin", claims.DEFAULT_MARGIN))
    verdict_lines, found = verdicts(results, phases, curves, manifest, run_dir, margin)
    write_csv(run_dir / "verdicts.csv", [v.row() for v in found], list(claims.Verdict("", "", "", "", []).row()))
    print_verdicts(found)
    lines = [
        f"# Run {manifest['run_id']}",
        "",
        f"Command: `{' '.join(manifest['command'])}`  ",
        f"Dataset: {manifest['config']['data']['dataset']}; evaluation: {', '.join(manifest['evaluation_sets'])}; "
        f"model: {manifest['config']['encoder']['model']}; seeds: {manifest.get('seeds')}; reference: {reference}.  ",
        f"Validation: {manifest.get('validation')}. Energy: {manifest.get('energy')}.",
        "",
        *verdict_lines,
        "## Time-to-target",
        "",
        "| regime | fraction | seed | target (reference best val. nDCG@10) | reached | training s | examples | "
        "reference s to best | speedup |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in claims.time_to_target(curves, reference):
        lines.append(
            f"| {t.regime} | {t.data_fraction:g} | {t.seed} | {t.target:.4f} | {'yes' if t.reached else 'not reached'} "
            f"| {f'{t.wall_s:.1f}' if t.reached else ''} | {t.examples if t.reached else ''} "
            f"| {t.reference_wall_to_best_s:.1f} | {'' if math.isnan(t.speedup) else f'{t.speedup:.2f}x'} |"
        )
    lines += ["", "## Does validation predict the test?", ""]
    if {"best_validation_ndcg10", "nDCG@10"} <= set(results.columns):
        lines += [f"- {agreement.text()}." for agreement in claims.validation_agreement(results)]
    else:
        lines.append("- Not measurable: results.csv has no best validation or test nDCG@10.")
    lines += ["", f"## Data efficiency (tolerance {tolerance})", ""]
    for d in claims.data_efficiency(results, reference, tolerance, p_values):
        points = "; ".join(f"{f:g}: {s:.4f}" + ("" if math.isnan(p) else f" (p {p:.3g})") for f, s, p in d.fractions)
        smallest = f"**{d.smallest_within:g}**" if d.smallest_within is not None else "none of the fractions run"
        lines.append(
            f"- {d.regime} on {d.eval_set}: reference at 1.0 = {d.reference_ndcg:.4f}; {points}; smallest "
            f"fraction within tolerance: {smallest}."
        )
    lines += ["", "## Tables", "", _markdown_results(results), "", "## Plots", ""]
    lines += [f"![{name}]({name})" for name in pictures]
    path = run_dir / "report.md"
    write_atomic(path, "\n".join(lines) + "\n")
    return path


def _markdown_results(results: pd.DataFrame) -> str:
    columns = {
        "eval_set": str,
        "system": str,
        "data_fraction": "g",
        "seed": "d",
        "nDCG@10": ".4f",
        "RR@10": ".4f",
        "R@100": ".4f",
        "R@1000": ".4f",
        "examples_consumed": "d",
        "charged_wall_s": ".1f",
        "speedup_wall": ".2f",
        "speedup_wall_vs_full": ".2f",
        "status": str,
    }
    present = [c for c in columns if c in results.columns]
    lines = ["| " + " | ".join(present) + " |", "| " + " | ".join("---" for _ in present) + " |"]
    for _, row in results.iterrows():
        cells = []
        for column in present:
            value, style = row[column], columns[column]
            if pd.isna(value):
                cells.append("")
            elif style is str:
                cells.append(str(value))
            else:
                cells.append(format(int(value) if style == "d" else float(value), style))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rerender(run_dir: Path, tolerance: float, margin: float | None = None) -> int:
    """``python -m benchmark report``: the tables, plots and report.md again, without training."""
    results, phases, _, manifest = load(run_dir)
    rows = results.astype(object).where(results.notna(), None).to_dict("records")
    report.print_tables(rows, phases.to_dict("records"), manifest["config"]["reference"])
    path = render(run_dir, tolerance, margin)
    cards = model_card.write_model_cards(run_dir, results, manifest)
    from benchmark.common.progress import say

    say(f"Wrote {path} and its plots, and {len(cards)} model cards (models/*/{model_card.CARD_FILE})")
    return 0
