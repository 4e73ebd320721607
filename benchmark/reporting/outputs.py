"""The files a finished run writes (results, phases, curves, manifest, model cards) and what it prints: the tables
and the claims' verdicts (report.md, verdicts.csv), all from the same rows, so ``report`` re-renders them."""

from __future__ import annotations

from benchmark.common.files import write_csv, write_json
from benchmark.common.progress import say
from benchmark.reporting import claims_report, manifest, model_card
from benchmark.reporting import tables as report

CURVE_COLUMNS = ["regime", "data_fraction", "seed", "step", "examples_seen", "elapsed_s", "ndcg_at_10", "tune_point"]


def write_run(state, tables: list, config, argv: list[str], started: float, eval_collections, begun: dict) -> list:
    """results.csv, phases.csv, curves.csv, manifest.json and each saved model's card; returns the result rows."""
    results = report.result_rows(tables, state, config)
    write_outputs(state, results, config, argv, started, eval_collections, begun)
    model_card.write_for_run(state.directory)  # after evaluation, from the rows just written: a card needs them
    return results


def report_run(state, results: list, config) -> None:
    """The tables on the console, then report.md and the verdicts."""
    report.print_tables(results, [record.row() for record in state.meter.records], config.reference)
    claims_report.render(state.directory, config.tolerance)
    say(f"Results in {state.directory}")


def write_outputs(state, results, config, argv, started, eval_collections, begun: dict | None = None) -> None:
    directory = state.directory
    write_csv(directory / "results.csv", results)
    write_csv(directory / "phases.csv", (record.row() for record in state.meter.records))
    selected = {run.tune.selected_run.cell.id for run in state.regime_runs if run.tune}
    unselected = [run for run in state.tune_points if run.cell.id not in selected]  # shown by their tuned label
    unselected_ids = {run.cell.id for run in unselected}
    curves = [
        {
            "regime": run.cell.name,
            "data_fraction": run.cell.fraction,
            "seed": run.cell.seed,
            **vars(point),
            "tune_point": run.cell.id in unselected_ids,
        }
        for run in [*state.regime_runs, *unselected]
        for point in run.outcome.curve
    ]
    write_csv(directory / "curves.csv", curves, CURVE_COLUMNS)
    write_json(
        directory / "manifest.json",
        manifest.build(config, argv, state, started, [c.name for c in eval_collections], begun),
    )
