"""``python -m benchmark compare``: the same systems across finished runs, e.g. two machines, or before and after a
change. Systems are matched by name and evaluation set; each one's runs are rows side by side, its effectiveness and
charged costs with their ratio to the first run, in one rich table, also written as CSV.

Only the files of finished runs are read (results.csv, manifest.json): nothing is retrained or re-evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.markup import escape
from rich.table import Table

from benchmark.common.errors import UsageError
from benchmark.common.files import read_json, write_csv

CSV_NAME = "compare.csv"
MEASURES = ("nDCG@10", "R@100")  # R@100 where the runs have it
COSTS = ("charged_wall_s", "charged_gpu_hours", "charged_energy_kwh", "charged_co2_kg")
SHOWN_COSTS = {"charged_wall_s": ("wall s", 1), "charged_energy_kwh": ("energy kWh", 6)}
Key = tuple[str, str]  # (evaluation set, system)


@dataclass(frozen=True)
class FinishedRun:
    """One run's results rows by (evaluation set, system), and where and how it ran."""

    label: str
    path: Path
    rows: dict[Key, dict]
    manifest: dict

    @property
    def machine(self) -> str:
        hardware = self.manifest.get("hardware", {})
        gpus = ", ".join(hardware.get("gpus", []))
        return f"{self.manifest.get('device', '?')} ({gpus or hardware.get('cpu', '?')})"


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def ratio(value, first) -> float:
    """value / first; NaN where either is missing or the first is zero."""
    value, first = _number(value), _number(first)
    return value / first if first and not math.isnan(first) and not math.isnan(value) else math.nan


def load_run(path: Path, label: str) -> FinishedRun:
    """A finished run's rows; UsageError naming the problem and the fix otherwise."""
    fix = "name results/<run-id> folders of finished runs"
    if not path.is_dir():
        raise UsageError(f"{path} is not a folder; {fix}")
    missing = [name for name in ("results.csv", "manifest.json") if not (path / name).exists()]
    if missing:
        raise UsageError(f"{path} is not a finished run ({' and '.join(missing)} missing); {fix}")
    try:
        manifest = read_json(path / "manifest.json")
        results = pd.read_csv(path / "results.csv", dtype={"system": str, "eval_set": str})
    except (ValueError, pd.errors.ParserError):
        raise UsageError(f"{path} holds an unreadable results.csv or manifest.json; {fix}") from None
    if manifest.get("state", "finished") != "finished":
        raise UsageError(
            f"{path} is not a finished run (its manifest says {manifest.get('state')!r}); finish it with "
            f"`python -m benchmark run --resume {path.name} --out {path.parent}`, or name another run"
        )
    if not {"system", "eval_set"} <= set(results.columns):
        raise UsageError(f"{path}/results.csv has no system and eval_set columns; {fix}")
    records = results.astype(object).where(results.notna(), None).to_dict("records")
    rows: dict[Key, dict] = {}
    for row in records:
        rows.setdefault((str(row["eval_set"]), str(row["system"])), row)
    return FinishedRun(label=label, path=path, rows=rows, manifest=manifest)


def load_runs(paths: Sequence[Path]) -> list[FinishedRun]:
    """Every run, labelled by its folder name (by the path as given where two folders share a name)."""
    if len(paths) < 2:
        raise UsageError(
            f"compare needs at least two runs, got {len(paths)}; name two or more results/<run-id> folders"
        )
    names = [path.name for path in paths]
    labels = [name if names.count(name) == 1 else str(path) for name, path in zip(names, paths, strict=True)]
    if len(set(labels)) < len(labels):
        raise UsageError("the same run is named twice; name each results/<run-id> folder once")
    return [load_run(path, label) for path, label in zip(paths, labels, strict=True)]


def common_keys(runs: Sequence[FinishedRun]) -> tuple[list[Key], list[Key]]:
    """The (evaluation set, system) pairs every run has, in the first run's order, and those left out."""
    every = [key for run in runs for key in run.rows]
    shared = [key for key in runs[0].rows if all(key in run.rows for run in runs[1:])]
    if not shared:
        systems = "; ".join(f"{run.label}: {', '.join(sorted({s for _, s in run.rows}))}" for run in runs)
        raise UsageError(
            f"the runs have no system on the same evaluation set in common ({systems}); compare runs of the same "
            "systems and evaluation sets"
        )
    left_out = [key for key in dict.fromkeys(every) if key not in shared]
    return shared, left_out


def measures(runs: Sequence[FinishedRun]) -> list[str]:
    """nDCG@10, and R@100 where any run has it."""
    columns = {column for run in runs for row in run.rows.values() for column in row}
    return [measure for measure in MEASURES if measure in columns]


def comparison_rows(runs: Sequence[FinishedRun], keys: Sequence[Key], shown: Sequence[str]) -> list[dict]:
    """One row per (evaluation set, system, run): the values and their ratio to the first run's."""
    rows = []
    for key in keys:
        first = runs[0].rows[key]
        for run in runs:
            mine = run.rows[key]
            row = {
                "eval_set": key[0],
                "system": key[1],
                "kind": mine.get("kind"),
                "run": run.label,
                "run_dir": str(run.path),
                "device": run.manifest.get("device"),
                "precision": run.manifest.get("precision"),
            }
            for field in (*shown, *COSTS):
                row[field] = _number(mine.get(field))
                if field in shown:
                    row[f"{field} sig"] = mine.get(f"{field} sig") or ""
                row[f"{field} ratio"] = ratio(mine.get(field), first.get(field))
            row["energy_mode"] = mine.get("energy_mode") or ""
            rows.append(row)
    return rows


def _cell(value: float, digits: int) -> str:
    return "" if math.isnan(value) else f"{value:.{digits}f}"


def _times(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.2f}x"


def comparison_table(rows: Sequence[dict], runs: Sequence[FinishedRun], shown: Sequence[str]) -> Table:
    title = (
        f"The same systems across {len(runs)} runs; x first = this run's value / {runs[0].label}'s "
        "(+ / - : better / worse than that run's initial encoder, paired t-test, Holm-corrected, p<0.05)"
    )
    caption = "; ".join(f"{run.label}: {run.path}, {run.machine}" for run in runs)
    table = Table(title=escape(title), caption=escape(caption))
    columns = ["eval set", "system", "run"]
    for measure in shown:
        columns += [measure, "x first"]
    for label, _ in SHOWN_COSTS.values():
        columns += [label, "x first"]
    columns.append("energy")
    for column in columns:
        text = column in ("eval set", "system")  # the only columns that wrap when the table is too wide
        table.add_column(column, justify="left" if text or column in ("run", "energy") else "right", no_wrap=not text)
    for index, row in enumerate(rows):
        cells = [row["eval_set"], row["system"], row["run"]]
        for measure in shown:
            cells += [_cell(row[measure], 4) + row[f"{measure} sig"], _times(row[f"{measure} ratio"])]
        for field, (_, digits) in SHOWN_COSTS.items():
            cells += [_cell(row[field], digits), _times(row[f"{field} ratio"])]
        cells.append(row["energy_mode"])
        following = rows[index + 1] if index + 1 < len(rows) else {}
        last_of_key = (following.get("eval_set"), following.get("system")) != (row["eval_set"], row["system"])
        table.add_row(*(escape(str(cell)) for cell in cells), end_section=last_of_key)
    return table


def without_nan(row: dict) -> dict:
    """Empty CSV cells where a value is missing, not "nan"."""
    return {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in row.items()}


def csv_path(out: Path | None) -> Path:
    """``--out``: a file, or a folder to hold compare.csv; by default compare.csv in the current folder (the runs
    themselves are left as they were)."""
    if out is None:
        return Path(CSV_NAME)
    return out / CSV_NAME if out.is_dir() else out


def compare(paths: Sequence[Path], out: Path | None = None) -> int:
    """Print the table, write the CSV; returns the exit status."""
    from benchmark.common.progress import console, say

    runs = load_runs(paths)
    keys, left_out = common_keys(runs)
    shown = measures(runs)
    rows = comparison_rows(runs, keys, shown)
    target = csv_path(out)
    try:
        write_csv(target, (without_nan(row) for row in rows))
    except OSError as error:
        raise UsageError(
            f"cannot write {target} ({error.strerror}); pass a writable file or folder with --out"
        ) from None
    console.print(comparison_table(rows, runs, shown))
    if left_out:
        say(escape(f"Not in every run, left out: {', '.join(f'{s} ({e})' for e, s in left_out)}"))
    say(f"Wrote {target}")
    return 0
