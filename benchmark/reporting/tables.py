"""Results rows and the rich tables a user reads: effectiveness with significance markers, costs and speedups.

Tables are rendered from rows (dicts, as in results.csv and phases.csv), so ``python -m benchmark report`` can
re-render them from the saved files without training.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence

import pandas as pd
from rich.table import Table

from benchmark.common.progress import console
from benchmark.evaluation.systems import MEASURE_NAMES, significant
from benchmark.measurement.phases import PhaseRecord
from benchmark.training.tuning import row_fields as tune_fields

COST_FIELDS = ("wall_s", "cpu_s", "gpu_hours", "energy_kwh", "co2_kg")
SPEEDUP_FIELDS = {"wall": "wall_s", "gpu_hours": "gpu_hours", "energy": "energy_kwh"}


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def charged(records: Sequence[PhaseRecord], cell: str) -> dict:
    """Sum of every phase charged to one cell (regime x fraction x seed); estimated energy wins over measured."""
    mine = [r for r in records if r.charged_to and r.cell == cell]
    totals: dict = {f"charged_{name}": 0.0 for name in COST_FIELDS}
    for record in mine:
        for name in COST_FIELDS:
            totals[f"charged_{name}"] += _float(getattr(record, name))
    modes = {r.energy_mode for r in mine}
    totals["energy_mode"] = "estimated" if "estimated" in modes else (modes.pop() if len(modes) == 1 else "")
    totals["charged_phases"] = "+".join(dict.fromkeys(r.phase for r in mine))
    totals["reused_phases"] = "+".join(dict.fromkeys(r.phase for r in mine if r.reused))
    return totals


def reference_run(runs, reference: str, fraction: float, seed: int):
    """The reference regime's run (matched by label, then by name) at the same fraction and seed; where it was
    not trained at that fraction, its run at the largest fraction with that seed (the paper's comparison)."""
    mine = [r for r in runs if r.cell.seed == seed and r.cell.name == reference]
    mine = mine or [r for r in runs if r.cell.seed == seed and r.regime.name == reference]
    same = [r for r in mine if r.cell.fraction == fraction]
    if same:
        return same[0]
    return max(mine, key=lambda r: r.cell.fraction, default=None)


def speedups(mine: dict, theirs: dict | None) -> dict:
    """cost(reference) / cost(regime) for wall-clock, accelerator-hours and energy; NaN where undefined."""
    out = {}
    for name, field in SPEEDUP_FIELDS.items():
        numerator = _float((theirs or {}).get(f"charged_{field}"))
        denominator = _float(mine.get(f"charged_{field}"))
        valid = denominator > 0 and numerator > 0
        out[f"speedup_{name}"] = numerator / denominator if valid else math.nan
    return out


def result_rows(tables: Sequence[pd.DataFrame], state, config) -> list[dict]:
    """One row per system x evaluation set, with effectiveness, significance, provenance and charged costs; a
    --tune system's charged costs are its selected point's, its search's whole cost is in the tune_* columns."""
    points = {run.system: run for run in getattr(state, "tune_points", [])}
    runs = {**points, **{run.system: run for run in state.regime_runs}}
    records = state.meter.records
    rows = []
    for table in tables:
        for _, row in table.iterrows():
            system = row["system"]
            result = {
                "run_id": state.directory.name,
                "eval_set": row["eval_set"],
                "queries": row["queries"],
                "system": system,
                "kind": kind(system, runs, points),
            }
            result.update(effectiveness(row))
            if system in runs:
                run = runs[system]
                outcome = run.outcome
                costs = charged(records, run.charged_cell)
                reference = reference_run(state.regime_runs, config.reference, run.cell.fraction, run.cell.seed)
                full = reference_run(state.regime_runs, config.reference, math.inf, run.cell.seed)  # largest fraction
                result.update(
                    regime=run.cell.name,
                    regime_name=run.regime.name,
                    parameters=";".join(f"{k}={v}" for k, v in run.regime.settings.items()),
                    data_fraction=run.cell.fraction,
                    seed=run.cell.seed,
                    examples_budget=run.budget,
                    examples_consumed=outcome.examples_consumed,
                    examples_at_nonzero_lr=outcome.examples_at_nonzero_lr,
                    examples_scheduled=outcome.examples_scheduled,
                    examples_scheduled_at_nonzero_lr=outcome.examples_scheduled_at_nonzero_lr,
                    processes=outcome.processes,
                    steps=outcome.steps,
                    best_step=outcome.best_step,
                    examples_at_best=outcome.best_examples,
                    train_wall_to_best_s=outcome.best_elapsed_s,
                    best_validation_ndcg10=outcome.best_validation,
                    stopped_early=outcome.stopped_early,
                    status=outcome.status,
                    selection=outcome.selection,
                    **costs,
                    reference=reference.system if reference else f"{config.reference} (not in this run)",
                    **speedups(costs, charged(records, reference.charged_cell) if reference else None),
                    reference_full=full.system if full else "",
                    **{
                        f"{name}_vs_full": value
                        for name, value in speedups(
                            costs, charged(records, full.charged_cell) if full else None
                        ).items()
                    },
                    **run.regime.notes,
                )
                if run.tune is not None:
                    result.update(tune_fields(run.tune))
            else:
                result["status"] = retrieval_status(row)
            per_seed = state.notes.get("pairwise_accuracy", {}).get(system)
            if per_seed and system not in runs:  # the initial encoder's and the teachers' rows, mean over seeds
                result["pairwise_accuracy"] = statistics.fmean(per_seed.values())
            rows.append(result)
    return rows


def effectiveness(row: pd.Series) -> dict:
    """The columns of a results row that depend on the evaluation set: the measures, their significance markers and
    Holm-corrected p-values against the initial encoder (a row of ``evaluation.experiment``'s table)."""
    columns = {measure: row[measure] for measure in MEASURE_NAMES}
    for measure in MEASURE_NAMES:
        columns[f"{measure} sig"] = significant(row, measure)
        columns[f"{measure} p"] = row.get(f"{measure} p-value corrected")
    return columns


def retrieval_status(row: pd.Series) -> str:
    """An untrained system's status: why it could not be evaluated (a score-file teacher), else ok."""
    status = row.get("status")
    return status if isinstance(status, str) else "ok"


def kind(system: str, runs: dict, points: dict) -> str:
    if system in runs:
        return "tune point" if system in points and runs[system] is points[system] else "regime"
    return "teacher" if system.startswith("teacher:") else system


def _number(value, digits: int = 4) -> str:
    value = _float(value)
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _ratio(value) -> str:
    value = _float(value)
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def _mean_std(values: list[float], digits: int) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def group_over_seeds(results: Sequence[dict]) -> dict[tuple, list[dict]]:
    """Rows of the same system at the same fraction on the same evaluation set, across seeds."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in results:
        name = row.get("regime") or row["system"]
        key = (row["eval_set"], name, _float(row.get("data_fraction")) if row.get("regime") else math.nan)
        groups[key].append(row)
    return groups


def effectiveness_table(results: Sequence[dict]) -> Table:
    seeds = {row.get("seed") for row in results if row.get("regime")}
    over = f"; mean ± std over {len(seeds)} seeds" if len(seeds) > 1 else ""
    table = Table(
        title=f"Effectiveness (pt.Experiment; + / - : paired t-test vs initial, Holm-corrected, p<0.05{over})"
    )
    for column in ("eval set", "system", "fraction", *MEASURE_NAMES, "examples", "status"):
        table.add_column(column, justify="right" if column in (*MEASURE_NAMES, "examples", "fraction") else "left")
    for (eval_set, name, fraction), rows in group_over_seeds(results).items():
        cells = []
        for measure in MEASURE_NAMES:
            marks = "".join(sorted({row.get(f"{measure} sig") or "" for row in rows}))
            cells.append(_mean_std([_float(row[measure]) for row in rows], 4) + marks)
        examples = _mean_std([_float(row.get("examples_consumed")) for row in rows], 0) if rows[0].get("regime") else ""
        statuses = "; ".join(dict.fromkeys(str(row.get("status", "")) for row in rows))
        table.add_row(eval_set, name, "" if math.isnan(fraction) else f"{fraction:g}", *cells, examples, statuses)
    return table


def cost_table(results: Sequence[dict], phases: Sequence[dict], reference: str) -> Table:
    title = (
        f"Costs charged to each regime (its preparation, training and validation); speedup = {reference} at the same "
        f"fraction / regime; vs full = {reference} at its full budget / regime; a --tune system: wall s of its "
        "selected point, with tune s of its whole search"
    )
    table = Table(title=title)
    columns = (
        "regime",
        "fraction",
        "phases",
        "wall s",
        "with tune s",
        "to best s",
        "CPU s",
        "GPU h",
        "energy kWh",
        "CO2 kg",
        "energy",
        "speedup wall",
        "speedup GPU h",
        "speedup energy",
        "speedup wall vs full",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("regime", "phases", "energy") else "right")
    first_eval = results[0]["eval_set"] if results else None
    regime_rows = [row for row in results if row.get("regime") and row["eval_set"] == first_eval]
    for (_, name, fraction), rows in group_over_seeds(regime_rows).items():

        def cell(field: str, digits: int, rows=rows) -> str:
            return _mean_std([_float(row.get(field)) for row in rows], digits)

        def ratio(field: str, rows=rows) -> str:
            values = [_float(row.get(field)) for row in rows if not math.isnan(_float(row.get(field)))]
            return _ratio(statistics.mean(values)) if values else "n/a"

        phases_text = rows[0].get("charged_phases", "")
        if rows[0].get("reused_phases"):
            phases_text += f" (reused: {rows[0]['reused_phases']})"
        table.add_row(
            name,
            f"{fraction:g}",
            phases_text,
            cell("charged_wall_s", 1),
            cell("tune_wall_s", 1) if isinstance(rows[0].get("tune_grid"), str) and rows[0]["tune_grid"] else "",
            cell("train_wall_to_best_s", 1),
            cell("charged_cpu_s", 1),
            cell("charged_gpu_hours", 5),
            cell("charged_energy_kwh", 6),
            cell("charged_co2_kg", 6),
            rows[0].get("energy_mode") or "not measured",
            ratio("speedup_wall"),
            ratio("speedup_gpu_hours"),
            ratio("speedup_energy"),
            ratio("speedup_wall_vs_full"),
        )
    shared = [p for p in phases if not p.get("charged_to")]
    if shared:
        table.add_row(
            "(shared, charged to none)",
            "",
            "+".join(dict.fromkeys(p["phase"] for p in shared)),
            _number(sum(_float(p["wall_s"]) for p in shared), 1),
            "",
            "",
            _number(sum(_float(p["cpu_s"]) for p in shared), 1),
            _number(sum(_float(p["gpu_hours"]) for p in shared), 5),
            _number(sum(0.0 if math.isnan(_float(p["energy_kwh"])) else _float(p["energy_kwh"]) for p in shared), 6),
            _number(sum(0.0 if math.isnan(_float(p["co2_kg"])) else _float(p["co2_kg"]) for p in shared), 6),
            "",
            "",
            "",
            "",
            "",
        )
    return table


def print_tables(results: Sequence[dict], phases: Sequence[dict], reference: str) -> None:
    console.print(effectiveness_table(results))
    console.print(cost_table(results, phases, reference))
