"""What a regime may use while it prepares: the data, its budget, the measuring meter and the cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmark.data.collections import Collection
from benchmark.data.triples import Triple
from benchmark.encoder import BiEncoder, EncoderConfig
from benchmark.measurement.phases import Meter
from benchmark.training.distributed import ONE_PROCESS, Processes


@dataclass
class RegimeContext:
    """Handed to ``Regime.prepare``; phases it opens with ``meter.phase(name, charged_to=label)`` are its cost."""

    label: str
    cell: str
    collection: Collection
    triples: Sequence[Triple]
    encoder_config: EncoderConfig
    meter: Meter
    cache_dir: Path
    seed: int
    batch_size: int
    encoder: BiEncoder | None = None  # holding the initial weights while the regime prepares
    # every training triple of the split (the budget is a prefix of them): what budget-independent teacher
    # normalisation and scale are fitted on; empty when a caller has only the budget
    training_triples: Sequence[Triple] = ()
    # the processes that share teacher scoring: all of them on the main process, which leads; only it there
    # (the others prepare from its caches)
    processes: Processes = ONE_PROCESS
