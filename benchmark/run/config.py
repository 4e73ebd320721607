"""The settings of one run, shared by every regime in it, and how ``--regimes`` is parsed."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from benchmark.common.errors import UsageError
from benchmark.encoder import EncoderConfig
from benchmark.training.loop import TrainingConfig
from regimes import REGISTRY, Regime


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "beir/scifact"
    evaluation: tuple[str, ...] = ()  # empty: the dataset's own test split
    validation_fraction: float = 0.1
    validation_depth: int = 5  # BM25 and initial-encoder top-k per held-out query in the validation corpus
    validation_random_documents: int = 300  # seeded random sample of the rest of the corpus
    validation_whole_corpus_up_to: int = 1000  # validate on the whole corpus when it has at most this many
    negatives_per_positive: int = 4
    mining_depth: int = 100
    max_train_triples: int | None = None
    max_eval_queries: int | None = None
    max_validation_queries: int | None = None


@dataclass(frozen=True)
class RunConfig:
    regimes: tuple[str, ...]  # labels, as typed after --regimes
    data_fractions: tuple[float, ...] = (0.135,)
    seeds: tuple[int, ...] = (42,)
    fractions_by_regime: tuple[tuple[str, tuple[float, ...]], ...] = ()  # presets: per-label fractions
    seeds_by_cell: tuple[tuple[str, float, tuple[int, ...]], ...] = ()  # presets: (label, fraction) on fewer seeds
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    out: Path = Path("results")
    run_id: str | None = None
    cache_dir: Path = Path.home() / ".cache" / "dense-regime-benchmark"
    reference: str = "teacher-distillation"
    tolerance: float = 0.01
    equivalence_margin: float = 0.02  # claim 1's TOST margin in nDCG@10 (README: why 0.02)
    reference_fraction: float | None = 1.0  # the reference is also trained at this fraction; None: not
    country: str = "USA"
    energy: bool = True
    resume: bool = False  # continue the run in out/run_id (its finished cells are loaded, not retrained)
    keep_checkpoints: bool = False  # keep every validated checkpoint, not only each cell's selected one
    tune: tuple[str, ...] = ()  # --tune specs, normalised (benchmark.training.tuning): one more system each
    evaluate_all: bool = False  # every --tune point gets its test rows too (never used for selection)
    log_with: tuple[str, ...] = ()  # experiment trackers (benchmark.measurement.tracking); none by default

    def as_dict(self) -> dict:
        return asdict(self)

    def fractions_for(self, label: str) -> tuple[float, ...]:
        """The data fractions a regime is trained at: its own list in a preset, else --data-fraction's."""
        return dict(self.fractions_by_regime).get(label, self.data_fractions)

    def seeds_for(self, label: str, fraction: float) -> tuple[int, ...]:
        """The seeds a regime is trained with at a fraction: fewer in a preset (``reproduce`` trains the cells no
        claim is judged on with one seed), else all of ``seeds``."""
        for own_label, own_fraction, own_seeds in self.seeds_by_cell:
            if own_label == label and own_fraction == fraction:
                return own_seeds
        return self.seeds

    @property
    def is_grid(self) -> bool:
        """More than one cell per regime: system names then carry the fraction and seed."""
        labels = (*self.regimes, *self.tune)
        return len(self.seeds) > 1 or any(len(self.fractions_for(label)) > 1 for label in labels)


def from_stored(stored: dict) -> RunConfig:
    """The RunConfig a manifest.json holds (``as_dict`` through JSON), so a finished run can be evaluated again with
    its own settings: lists back to tuples, paths back to Paths; keys this version does not know are left out."""
    nested = {"data": DataConfig, "encoder": EncoderConfig, "training": TrainingConfig}
    values: dict[str, Any] = {}
    for run_field in fields(RunConfig):
        if run_field.name not in stored:
            continue
        value = stored[run_field.name]
        if run_field.name in nested:
            kind = nested[run_field.name]
            known = {f.name for f in fields(kind)}
            value = kind(**{key: _tuples(v) for key, v in value.items() if key in known})
        elif run_field.name in ("out", "cache_dir"):
            value = Path(value)
        else:
            value = _tuples(value)
        values[run_field.name] = value
    return RunConfig(**values)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


def with_reference_fraction(
    by_regime: tuple[tuple[str, tuple[float, ...]], ...],
    labels: tuple[str, ...],
    names: dict[str, str],
    fractions: tuple[float, ...],
    reference: str,
    reference_fraction: float | None,
) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """Per-label fractions with the reference (matched by label, else by name) also at ``reference_fraction``
    (its full budget) when it is not among its fractions, so speedups and claim 1 compare against full data."""
    if reference_fraction is None:
        return by_regime
    matches = [label for label in labels if label == reference] or [
        label for label in labels if names[label] == reference
    ]
    if not matches:
        return by_regime
    own = dict(by_regime)
    label = matches[0]
    current = own.get(label, fractions)
    if reference_fraction in current:
        return by_regime
    own[label] = (*current, reference_fraction)
    return tuple(own.items())


# Settings that change where files go, what is kept or where it is also logged, never a result: a run may be resumed
# with other values.
RESUME_FREE = frozenset({"out", "run_id", "cache_dir", "resume", "keep_checkpoints", "log_with"})


def comparable(config: dict) -> dict:
    """A config as stored in manifest.json (JSON types), without the settings a resume may change."""
    plain = json.loads(json.dumps(config, default=str))
    return {key: value for key, value in plain.items() if key not in RESUME_FREE}


def differences(stored: Any, current: Any, prefix: str = "") -> list[str]:
    """Where two stored configs differ, as ``name (stored -> current)``, so a refused resume says what changed."""
    if isinstance(stored, dict) and isinstance(current, dict):
        found = []
        for key in dict.fromkeys([*stored, *current]):
            found += differences(stored.get(key), current.get(key), f"{prefix}{key}.")
        return found
    return [] if stored == current else [f"{prefix.rstrip('.')} ({stored!r} -> {current!r})"]


def split_regime_specs(text: str) -> list[str]:
    """``a,b:k=v,k2=v2,c`` -> ["a", "b:k=v,k2=v2", "c"]: a comma starts a new regime unless ``key=`` follows."""
    specs: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if specs and "=" in part and ":" not in part.split("=", 1)[0]:
            specs[-1] += "," + part
        else:
            specs.append(part)
    return specs


def parse_regime(spec: str) -> Regime:
    """``name`` or ``name:key=value,...`` -> a configured regime, or a UsageError naming the fix."""
    name, _, settings_text = spec.partition(":")
    name = name.strip()
    if name not in REGISTRY:
        raise UsageError(
            f"unknown regime {name!r}; choose from {', '.join(sorted(REGISTRY))} (see `python -m benchmark list`)"
        )
    settings: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in settings_text.split(","))):
        key, equals, value = item.partition("=")
        if not equals:
            raise UsageError(f"regime {name!r}: setting {item!r} needs the form key=value")
        settings[key.strip()] = value.strip()
    return REGISTRY[name].from_strings(settings)


def parse_regimes(text: str) -> list[Regime]:
    """``all`` (every registered regime with its defaults) or a comma-separated list of specs."""
    specs = sorted(REGISTRY) if text.strip() == "all" else split_regime_specs(text)
    if not specs:
        raise UsageError("--regimes is empty; name at least one regime (see `python -m benchmark list`)")
    regimes = [parse_regime(spec) for spec in specs]
    labels = [regime.label for regime in regimes]
    duplicated = {label for label in labels if labels.count(label) > 1}
    if duplicated:
        raise UsageError(f"regime {sorted(duplicated)[0]!r} is named twice in --regimes; name it once")
    return regimes
