"""What every training regime has in common: named parameters, offline preparation, batch order and a loss.

A regime owns only what differs between regimes (see DESIGN.md); the encoder, the data budget and the training
loop are the harness's. Subclass :class:`Regime`, decorate it with :func:`register`, put it in its own module in
this package, and it is found by ``python -m benchmark list`` and ``--regimes``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from benchmark.common.errors import UsageError

if TYPE_CHECKING:
    from benchmark.data.triples import Triple
    from benchmark.encoder import EncoderConfig
    from benchmark.training.context import RegimeContext

Similarity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Pairwise similarity: (n, dim) x (m, dim) -> (n, m)."""


@dataclass(frozen=True)
class Parameter:
    """One ``key=value`` setting of a regime, parsed from the command line."""

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str

    def convert(self, regime: str, text: str) -> Any:
        try:
            return self.parse(text)
        except (ValueError, TypeError) as error:
            raise UsageError(
                f"regime {regime!r}: parameter {self.name}={text!r} is invalid ({error}); "
                f"see `python -m benchmark list`"
            ) from None


def parse_bool(text: str) -> bool:
    """Accept the usual spellings of a boolean on the command line."""
    lowered = text.strip().lower()
    if lowered in {"true", "1", "yes", "on"}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def format_value(value: Any) -> str:
    """A setting as it is typed on the command line (booleans in lower case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass
class TripleEmbeddings:
    """Embeddings of one batch of (query, positive, negative) triples, row i of each belonging together.

    On several processes (accelerate launch, torchrun) each holds some rows of the batch: its ``queries``,
    ``positives`` and ``negatives``. ``all_positives`` and ``all_negatives`` are every process's documents,
    gathered with gradients, in batch order, so in-batch losses see as many negatives as in one process; this
    process's rows start at ``offset``. In one process the ``all_`` tensors are the local ones.
    """

    queries: torch.Tensor
    positives: torch.Tensor
    negatives: torch.Tensor
    similarity: Similarity
    all_positives: torch.Tensor | None = None
    all_negatives: torch.Tensor | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        if self.all_positives is None:
            self.all_positives = self.positives
        if self.all_negatives is None:
            self.all_negatives = self.negatives

    @property
    def rows(self) -> slice:
        """This process's rows of the whole batch."""
        return slice(self.offset, self.offset + self.queries.shape[0])

    @property
    def batch_size(self) -> int:
        """Triples in the whole batch, over all processes."""
        return self.all_positives.shape[0]


class Regime(ABC):
    """Base class of every regime: parameters, optional preparation, the batch order and the loss."""

    name: ClassVar[str]
    description: ClassVar[str]
    citation: ClassVar[str] = ""
    parameters: ClassVar[tuple[Parameter, ...]] = ()

    def __init__(self, **settings: Any) -> None:
        known = {parameter.name: parameter for parameter in self.parameters}
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise UsageError(
                f"regime {self.name!r} has no parameter {unknown[0]!r}; it takes: {', '.join(known) or 'no parameters'}"
            )
        self.settings: dict[str, Any] = {name: p.default for name, p in known.items()}
        self.settings.update(settings)
        self.notes: dict[str, Any] = {}  # facts a run learns (e.g. triples dropped), written to results.csv
        self.validate()

    @classmethod
    def from_strings(cls, settings: dict[str, str]) -> Regime:
        """Build a regime from ``key=value`` strings as typed after ``name:``; unknown keys are refused by
        ``__init__``."""
        known = {parameter.name: parameter for parameter in cls.parameters}
        parsed = {key: known[key].convert(cls.name, text) if key in known else text for key, text in settings.items()}
        return cls(**parsed)

    def validate(self) -> None:
        """Refuse combinations of settings that make no sense; raise UsageError."""

    @property
    def label(self) -> str:
        """The name with every setting that differs from its default, as typed on the command line."""
        changed = [
            f"{p.name}={format_value(self.settings[p.name])}"
            for p in self.parameters
            if self.settings[p.name] != p.default
        ]
        return f"{self.name}:{','.join(changed)}" if changed else self.name

    def check(self, encoder_config: EncoderConfig) -> None:
        """Load or check what the regime needs (teacher models, score files) at the start of a run, so that a
        missing one fails in seconds, before data preparation; raise UsageError."""

    def prepare(self, context: RegimeContext) -> None:
        """Offline work before training (teacher scoring, clustering...), run inside phases charged to it."""

    def batches(self, triples: Sequence[Triple], batch_size: int, seed: int) -> Iterator[Sequence[Triple]]:
        """The order in which the budgeted triples reach the loss; by default the budget's own order.

        Every regime must yield each budgeted triple exactly once per epoch, so that all regimes consume the
        same data.
        """
        del seed
        for start in range(0, len(triples), batch_size):
            yield triples[start : start + batch_size]

    def evaluation_systems(self, env: Any) -> dict[str, Any]:
        """Extra rows for the results table (e.g. a teacher), as PyTerrier systems; None where not evaluable."""
        return {}

    @abstractmethod
    def loss(self, embeddings: TripleEmbeddings, batch: Sequence[Triple]) -> torch.Tensor:
        """The scalar loss of this process's rows of ``batch`` (the whole batch; its own triples are
        ``batch[embeddings.rows]``).

        It must be a mean over this process's queries of a per-query term with the same number of entries for
        every query: the training loop weights each process's loss by its share of the batch, so that several
        processes compute the same gradient as one.
        """


REGISTRY: dict[str, type[Regime]] = {}


def register(cls: type[Regime]) -> type[Regime]:
    """Class decorator: make a regime available by its name on the command line."""
    if cls.name in REGISTRY:
        raise RuntimeError(f"two regimes are named {cls.name!r}")
    REGISTRY[cls.name] = cls
    return cls
