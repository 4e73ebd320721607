"""``--tune``: a regime searched over a grid on validation, its selected point reported, the whole search charged.

A fair comparison tunes each regime on validation, and a regime that needs a search pays for it. A spec such as
``self-distillation:target=0.1|0.2|0.3`` or ``teacher-distillation:learning_rate=1e-5|2e-5`` is one more system of
the run: every grid point (the Cartesian product of the ``|`` lists) is trained as its own cell on the same budget,
the point with the best validation nDCG@10 is selected (the first in grid order on ties; the test split is never
looked at), and the search's summed cost is recorded as one phase ``tune`` charged to the spec's label.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from benchmark.common.errors import UsageError
from benchmark.measurement.phases import PhaseRecord
from benchmark.training.cells import Cell, RegimeRun
from benchmark.training.loop import TrainingConfig
from regimes import REGISTRY, Regime
from regimes.base import parse_bool

TUNE_PHASE = "tune"
POINT_SUFFIX = " (tune point)"
TRAINING_FIELDS = {field.name: field for field in fields(TrainingConfig)}
SCHEDULES = ("linear", "cosine", "constant_with_warmup")  # the choices of --schedule


@dataclass(frozen=True)
class TunePoint:
    """One grid point: a configured regime and the training settings it overrides."""

    regime: Regime
    training: tuple[tuple[str, Any], ...]  # TrainingConfig overrides, typed
    settings: str  # the grid keys' values as typed, e.g. "target=0.3"
    label: str  # its cells' label, e.g. "self-distillation:target=0.3 (tune point)"

    def training_config(self, base: TrainingConfig) -> TrainingConfig:
        return replace(base, **dict(self.training))


@dataclass(frozen=True)
class TuneSpec:
    """A parsed ``--tune`` spec: a regime, fixed settings and the grid, as typed."""

    regime: str
    fixed: tuple[tuple[str, str], ...]
    grid: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def label(self) -> str:
        """The spec as typed after normalising (spaces removed): the tuned system's name."""
        settings = [f"{key}={value}" for key, value in self.fixed] + [f"{k}={'|'.join(v)}" for k, v in self.grid]
        return f"{self.regime}:{','.join(settings)}"

    @property
    def grid_text(self) -> str:
        return ",".join(f"{key}={'|'.join(values)}" for key, values in self.grid)

    def points(self) -> list[TunePoint]:
        """Every point of the grid (Cartesian product, first key slowest), each with a freshly built regime."""
        keys = [key for key, _ in self.grid]
        points = []
        for values in itertools.product(*(values for _, values in self.grid)):
            chosen = dict(zip(keys, values, strict=True))
            settings = {**dict(self.fixed), **chosen}
            regime_settings = {k: v for k, v in settings.items() if k not in TRAINING_FIELDS}
            training = tuple((k, parse_training(k, v)) for k, v in settings.items() if k in TRAINING_FIELDS)
            described = ",".join(f"{k}={v}" for k, v in settings.items())
            points.append(
                TunePoint(
                    regime=REGISTRY[self.regime].from_strings(regime_settings),
                    training=training,
                    settings=",".join(f"{k}={v}" for k, v in chosen.items()),
                    label=f"{self.regime}:{described}{POINT_SUFFIX}",
                )
            )
        return points


def parse_training(key: str, text: str) -> Any:
    """A TrainingConfig value from text, by the field's type; UsageError naming the setting when it is invalid."""
    kind = str(TRAINING_FIELDS[key].type)
    try:
        if kind == "bool":
            return parse_bool(text)
        if kind == "int":
            value = int(text)
            if value < 1:
                raise ValueError("expected a positive whole number")
            return value
        if kind == "float":
            value = float(text)
            if not math.isfinite(value) or value < 0 or (key == "learning_rate" and value == 0):
                raise ValueError("expected a finite number, not negative (a learning rate above 0)")
            return value
        if key == "schedule" and text not in SCHEDULES:
            raise ValueError(f"expected one of {', '.join(SCHEDULES)}")
    except ValueError as error:
        raise UsageError(
            f"--tune: training setting {key}={text!r} is invalid ({error}); see `python -m benchmark run --help`"
        ) from None
    return text


def parse_spec(text: str, option: str = "--tune") -> TuneSpec:
    """``regime:key=v1|v2,key2=v`` -> a TuneSpec whose every point is valid; UsageError (one line) naming
    ``option`` (the flag the user typed) otherwise."""
    name, colon, settings_text = text.strip().partition(":")
    name = name.strip()
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise UsageError(f"{option} {text.strip()!r}: unknown regime {name!r}; choose from {known}")
    if not colon or not settings_text.strip():
        raise UsageError(f"{option} {name!r} names no grid; give e.g. {option} '{name}:learning_rate=1e-5|2e-5'")
    parameters = {parameter.name for parameter in REGISTRY[name].parameters}
    fixed: list[tuple[str, str]] = []
    grid: list[tuple[str, tuple[str, ...]]] = []
    for item in filter(None, (part.strip() for part in settings_text.split(","))):
        key, equals, value_text = (s.strip() for s in item.partition("="))
        values = tuple(v.strip() for v in value_text.split("|"))
        if not equals or not all(values):
            raise UsageError(f"{option} {name!r}: setting {item!r} needs the form key=value or key=v1|v2|v3")
        if key not in TRAINING_FIELDS and key not in parameters:
            known = ", ".join([*sorted(parameters), *TRAINING_FIELDS])
            raise UsageError(
                f"{option} {name!r}: {key!r} is neither a parameter of the regime nor a training setting; "
                f"choose from {known}"
            )
        if key in {k for k, _ in fixed} | {k for k, _ in grid}:
            raise UsageError(f"{option} {name!r}: {key!r} is given twice; give each setting once")
        if len(set(values)) != len(values):
            raise UsageError(f"{option} {name!r}: {key} lists a value twice; give each value once")
        if len(values) == 1:
            fixed.append((key, values[0]))
        else:
            grid.append((key, values))
    spec = TuneSpec(regime=name, fixed=tuple(fixed), grid=tuple(grid))
    if not grid:
        raise UsageError(f"{option} {spec.label!r} has one point only; give a setting several values, e.g. key=a|b")
    try:
        spec.points()  # every value parses and every point is a valid regime, before any work
    except UsageError as error:
        message = str(error).removeprefix("--tune: ")
        raise UsageError(f"{option} {spec.label!r}: {message}") from None
    return spec


def split_specs(texts: Iterable[str]) -> list[str]:
    """The ``--tune`` option's values (it may be given several times), each split at ``;``."""
    return [part.strip() for text in texts for part in text.split(";") if part.strip()]


def parse_specs(texts: Iterable[str]) -> list[TuneSpec]:
    specs = [parse_spec(text) for text in split_specs(texts)]
    labels = [spec.label for spec in specs]
    for label in labels:
        if labels.count(label) > 1:
            raise UsageError(f"--tune {label!r} is given twice; give it once")
    return specs


# --- selection and the search's cost ------------------------------------------------------------------------------
def select(validation_scores: Sequence[float]) -> int:
    """The index of the best validation nDCG@10 (NaN counts as worst); the first in grid order on ties."""
    best = 0
    for index, score in enumerate(validation_scores):
        if _finite(score) > _finite(validation_scores[best]):
            best = index
    return best


def _finite(value: float) -> float:
    return value if isinstance(value, int | float) and not math.isnan(value) else -math.inf


@dataclass
class TuneResult:
    """What the tuned system's results row says about its search."""

    spec: TuneSpec
    points: list[RegimeRun]  # in grid order
    selected: int  # index into points
    record: PhaseRecord  # the tune phase: the whole search's cost

    @property
    def selected_run(self) -> RegimeRun:
        return self.points[self.selected]

    @property
    def selected_settings(self) -> str:
        return self.spec.points()[self.selected].settings


def search_record(label: str, cell: str, points: Sequence[RegimeRun], records: Sequence[PhaseRecord]) -> PhaseRecord:
    """The ``tune`` phase: the sum of every point's charged phases. A phase replayed from a cache (``reused``, e.g.
    teacher scores) counts once for the whole search: the search computes it once and every point reuses it.
    The record's ``aggregates`` names the points' cells, so that it is never added to them again."""
    point_cells = [run.cell.id for run in points]
    total = PhaseRecord(phase=TUNE_PHASE, charged_to=label, cell=cell, count=len(points))
    total.aggregates = " + ".join(point_cells)
    total.energy_kwh = total.co2_kg = None
    seen: set[tuple] = set()
    modes = set()
    for record in (r for r in records if r.charged_to and r.cell in point_cells):
        key = (record.phase, record.wall_s, record.cpu_s, record.count, record.energy_kwh)
        if record.reused and key in seen:
            continue
        seen.add(key)
        total.wall_s += record.wall_s
        total.cpu_s += record.cpu_s
        total.gpu_hours += record.gpu_hours
        for name in ("energy_kwh", "co2_kg"):
            value = getattr(record, name)
            if value is not None and not math.isnan(value):
                setattr(total, name, (getattr(total, name) or 0.0) + value)
        total.peak_rss_mb = max(total.peak_rss_mb, record.peak_rss_mb)
        total.peak_gpu_mb = max(total.peak_gpu_mb, record.peak_gpu_mb)
        modes.add(record.energy_mode)
    total.energy_mode = "estimated" if "estimated" in modes else (modes.pop() if len(modes) == 1 else "not measured")
    return total


def tuned_run(spec: TuneSpec, points: list[RegimeRun], records: Sequence[PhaseRecord], grid: bool) -> RegimeRun:
    """The tuned system at one (fraction, seed): the point selected on validation, under the spec's label, with its
    search (``tune``) and the search's phase record."""
    chosen = points[select([run.outcome.best_validation for run in points])]
    cell = Cell(regime=chosen.regime, fraction=chosen.cell.fraction, seed=chosen.cell.seed, label=spec.label)
    record = search_record(spec.label, cell.id, points, records)
    run = RegimeRun(
        cell=cell,
        system=cell.system_name(grid),
        budget=chosen.budget,
        outcome=chosen.outcome,
        model_dir=chosen.model_dir,
    )
    run.tune = TuneResult(spec=spec, points=points, selected=points.index(chosen), record=record)
    return run


def row_fields(result: TuneResult) -> dict:
    """The tuned system's results.csv columns on its search: the grid, its size, the selected point, the search's
    whole cost (all points, the selected one included)."""
    record = result.record
    return {
        "tune_grid": result.spec.grid_text,
        "tune_points": len(result.points),
        "tune_selected": result.selected_settings,
        "tune_selected_cell": result.selected_run.cell.id,
        **{f"tune_{name}": getattr(record, name) for name in ("wall_s", "cpu_s", "gpu_hours", "energy_kwh", "co2_kg")},
    }
