"""Results rows and the rich tables a user reads: effectiveness with significance markers, and costs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from rich.table import Table

from benchmark.evaluation import MEASURE_NAMES, significant
from benchmark.measure import PhaseRecord
from benchmark.progress import console

COST_FIELDS = ("wall_s", "cpu_s", "gpu_hours", "energy_kwh", "co2_kg")


def charged(records: Sequence[PhaseRecord], label: str) -> dict:
    """Sum of every phase charged to a regime, with the energy mode (estimated wins over measured)."""
    mine = [r for r in records if r.charged_to == label]
    totals: dict = {f"charged_{name}": 0.0 for name in COST_FIELDS}
    for record in mine:
        for name in COST_FIELDS:
            value = getattr(record, name)
            if value is None:
                totals[f"charged_{name}"] = math.nan
            else:
                totals[f"charged_{name}"] += value
    modes = {r.energy_mode for r in mine}
    totals["energy_mode"] = "estimated" if "estimated" in modes else (modes.pop() if len(modes) == 1 else "")
    totals["charged_phases"] = "+".join(dict.fromkeys(r.phase for r in mine))
    return totals


SPEEDUP_FIELDS = {"wall": "wall_s", "gpu_hours": "gpu_hours", "energy": "energy_kwh"}


def reference_run(state, reference: str):
    """The regime run the speedups are measured against: matched by label first, then by name."""
    for run in state.regime_runs:
        if run.regime.label == reference:
            return run
    return next((run for run in state.regime_runs if run.regime.name == reference), None)


def speedups(state, reference: str, label: str) -> dict:
    """cost(reference) / cost(regime) for wall-clock, accelerator-hours and energy; NaN where undefined."""
    ref = reference_run(state, reference)
    out = {"reference": ref.regime.label if ref else f"{reference} (not in this run)"}
    mine = charged(state.meter.records, label)
    theirs = charged(state.meter.records, ref.regime.label) if ref else {}
    for name, field in SPEEDUP_FIELDS.items():
        numerator = theirs.get(f"charged_{field}", math.nan)
        denominator = mine[f"charged_{field}"]
        valid = denominator and not math.isnan(denominator) and not math.isnan(numerator) and numerator > 0
        out[f"speedup_{name}"] = numerator / denominator if valid else math.nan
    return out


def result_rows(tables: Sequence[pd.DataFrame], state, config) -> list[dict]:
    """One row per system x evaluation set, with effectiveness, significance, provenance and charged costs."""
    runs = {run.regime.label: run for run in state.regime_runs}
    rows = []
    for table in tables:
        for _, row in table.iterrows():
            system = row["system"]
            result = {
                "run_id": state.directory.name,
                "eval_set": row["eval_set"],
                "queries": row["queries"],
                "system": system,
                "kind": "regime" if system in runs else ("teacher" if system.startswith("teacher:") else system),
            }
            for measure in MEASURE_NAMES:
                result[measure] = row[measure]
            for measure in MEASURE_NAMES:
                result[f"{measure} sig"] = significant(row, measure)
                result[f"{measure} p"] = row.get(f"{measure} p-value corrected")
            if system in runs:
                run = runs[system]
                outcome = run.outcome
                result.update(
                    regime=run.regime.name,
                    parameters=";".join(f"{k}={v}" for k, v in run.regime.settings.items()),
                    data_fraction=config.data_fraction,
                    seed=config.seed,
                    examples_budget=run.budget,
                    examples_consumed=outcome.examples_consumed,
                    steps=outcome.steps,
                    best_step=outcome.best_step,
                    examples_at_best=outcome.best_examples,
                    train_wall_to_best_s=outcome.best_elapsed_s,
                    best_validation_ndcg10=outcome.best_validation,
                    stopped_early=outcome.stopped_early,
                    status=outcome.status,
                    **charged(state.meter.records, system),
                    **speedups(state, config.reference, system),
                    **run.regime.notes,
                )
            else:
                status = row.get("status")
                result["status"] = status if isinstance(status, str) else "ok"
            rows.append(result)
    return rows


def _number(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def effectiveness_table(results: Sequence[dict]) -> Table:
    table = Table(title="Effectiveness (pt.Experiment; + / - : paired t-test vs initial, Holm-corrected, p<0.05)")
    for column in ("eval set", "system", *MEASURE_NAMES, "examples", "status"):
        table.add_column(column, justify="right" if column in MEASURE_NAMES or column == "examples" else "left")
    for row in results:
        measures = [f"{_number(row[m])}{row[f'{m} sig']}" for m in MEASURE_NAMES]
        examples = str(row.get("examples_consumed", "")) if row["kind"] == "regime" else ""
        table.add_row(row["eval_set"], row["system"], *measures, examples, row.get("status", ""))
    return table


def cost_table(records: Sequence[PhaseRecord], state) -> Table:
    table = Table(title="Costs charged to each regime (its preparation, training and validation)")
    for column in (
        "regime",
        "phases",
        "wall s",
        "to best s",
        "CPU s",
        "GPU h",
        "energy kWh",
        "CO2 kg",
        "energy",
    ):
        table.add_column(column, justify="left" if column in ("regime", "phases", "energy") else "right")
    for run in state.regime_runs:
        totals = charged(records, run.regime.label)
        table.add_row(
            run.regime.label,
            totals["charged_phases"],
            _number(totals["charged_wall_s"], 1),
            _number(run.outcome.best_elapsed_s, 1),
            _number(totals["charged_cpu_s"], 1),
            _number(totals["charged_gpu_hours"], 5),
            _number(totals["charged_energy_kwh"], 6),
            _number(totals["charged_co2_kg"], 6),
            totals["energy_mode"] or "not measured",
            *(_ratio(value) for value in list(speedups(state, state.reference, run.regime.label).values())[1:]),
        )
    shared = [r for r in records if not r.charged_to]
    if shared:
        table.add_row(
            "(shared, charged to none)",
            "+".join(dict.fromkeys(r.phase for r in shared)),
            _number(sum(r.wall_s for r in shared), 1),
            "",
            _number(sum(r.cpu_s for r in shared), 1),
            _number(sum(r.gpu_hours for r in shared), 5),
            _number(sum(r.energy_kwh or 0.0 for r in shared), 6),
            _number(sum(r.co2_kg or 0.0 for r in shared), 6),
            "",
        )
    return table


def _ratio(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f}x"


def print_tables(results: Sequence[dict], records: Sequence[PhaseRecord], state) -> None:
    console.print(effectiveness_table(results))
    console.print(cost_table(records, state))
