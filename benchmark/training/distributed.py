"""Training on several processes: ``accelerate launch`` or ``torchrun`` start them, torch.distributed joins them.

Every process holds a replica of the encoder and embeds its share of each batch; the documents of all processes
are gathered with gradients (``torch.distributed.nn.functional.all_gather``), so an in-batch loss sees as many
negatives as in one process, while each process keeps its own queries as anchors. DistributedDataParallel
averages the gradients. Each process's loss is weighted by its share of the batch, so the gradient equals the
one-process gradient of the same global batch.

Outside training the main process (rank 0) leads and the others serve: where work is worth sharing (encoding a
corpus, scoring teacher pairs) the main process broadcasts a :class:`Task` and runs it with them; everything else
(data preparation, validation, retrieval, writing) runs on the main process while the others wait in
:meth:`Processes.serve`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from benchmark.data.triples import Triple
from benchmark.encoder import BiEncoder

if TYPE_CHECKING:  # regimes import this module (teachers share their scoring over the processes)
    from regimes.base import Regime


@dataclass(frozen=True)
class Processes:
    """Who this process is among ``world_size``; in one process every method is a no-op."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shares(self, size: int) -> list[int]:
        """Contiguous shares of a batch of ``size`` triples; the first ``size % world_size`` get one more."""
        base, extra = divmod(size, self.world_size)
        return [base + (rank < extra) for rank in range(self.world_size)]

    def rows(self, size: int) -> slice:
        """This process's rows of a batch of ``size`` triples."""
        shares = self.shares(size)
        start = sum(shares[: self.rank])
        return slice(start, start + shares[self.rank])

    def gather_rows(self, tensor: torch.Tensor, shares: list[int]) -> torch.Tensor:
        """Every process's rows in batch order, with gradients flowing back to the process that made them."""
        if not self.distributed:
            return tensor
        most = max(shares)
        padded = tensor
        if tensor.shape[0] < most:  # all_gather needs equal shapes: pad, then trim each part to its share
            padded = torch.cat([tensor, tensor.new_zeros(most - tensor.shape[0], *tensor.shape[1:])])
        parts = torch.distributed.nn.functional.all_gather(padded[:most])
        return torch.cat([part[:share] for part, share in zip(parts, shares, strict=True)])

    def total(self, value: float) -> float:
        """The sum of ``value`` over all processes."""
        if not self.distributed:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def broadcast(self, value: Any) -> Any:
        """The main process's ``value``, on every process."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def scatter(self, parts: Sequence[Any] | None) -> Any:
        """This process's item of the main process's ``parts`` (one per process; the others pass None)."""
        if not self.distributed:
            return parts[0] if parts is not None else None
        box = [None]
        dist.scatter_object_list(box, list(parts) if self.is_main else None, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any] | None:
        """Every process's ``value`` in rank order, on the main process; None on the others."""
        if not self.distributed:
            return [value]
        values = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, values, dst=0)
        return values

    def lead(self, task: Task) -> None:
        """Main process: start ``task`` on the other processes (it then runs its own part of it with them)."""
        if self.distributed:
            self.broadcast(task)

    def serve(self) -> Any:
        """Other processes: run every task the main process leads, until it broadcasts a plain value; return it."""
        while True:
            message = self.broadcast(None)
            if not isinstance(message, Task):
                return message
            message.serve(self)


class Task:
    """Work the main process shares: broadcast to the other processes, each of which runs :meth:`serve` in step
    with the main process's own part (the same collectives, in the same order)."""

    def serve(self, processes: Processes) -> None:
        raise NotImplementedError


ONE_PROCESS = Processes()


def launched_processes() -> int:
    """How many processes the launcher started (accelerate launch and torchrun both set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def start(device: torch.device) -> Processes:
    """Join the other processes, if a launcher started several: gloo on CPUs, NCCL on GPUs (via accelerate)."""
    if launched_processes() <= 1:
        return ONE_PROCESS
    from accelerate import PartialState

    state = PartialState(cpu=device.type == "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(state.local_process_index)
    return Processes(rank=state.process_index, world_size=state.num_processes)


class TripleEncoder(nn.Module):
    """The three token batches of a step in one forward, so DistributedDataParallel sees one forward per step."""

    def __init__(self, encoder: BiEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, *batches: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return tuple(self.encoder.embed_tokens(batch) for batch in batches)


def wrap(encoder: BiEncoder, processes: Processes) -> nn.Module:
    """The module a step calls: DistributedDataParallel over the encoder on several processes."""
    module = TripleEncoder(encoder)
    if not processes.distributed:
        return module
    device_ids = [torch.cuda.current_device()] if encoder.device.type == "cuda" else None
    # find_unused_parameters: a pooling may leave parts of the model (BERT's pooler) out of the graph
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)


TextsOf = Callable[[Sequence[Triple]], tuple[list[str], list[str], list[str]]]


def batch_loss(
    model: nn.Module,
    encoder: BiEncoder,
    regime: Regime,
    batch: Sequence[Triple],
    texts: TextsOf,
    processes: Processes,
) -> tuple[torch.Tensor, float]:
    """This process's loss to back-propagate, and the loss of the whole batch (the same on every process).

    The loss to back-propagate is the regime's loss of this process's rows times its share of the batch times
    the number of processes: DistributedDataParallel's average then gives the whole batch's gradient.
    """
    from regimes.base import TripleEmbeddings

    rows = processes.rows(len(batch))
    local = batch[rows]
    # A process with no row of a short last batch embeds one triple and weights it 0: it must still take part
    # in the collective operations of the forward and backward passes.
    queries, positives, negatives = texts(local or batch[:1])
    config = encoder.config
    q, p, n = model(
        encoder.tokenize(queries, config.max_query_length),
        encoder.tokenize(positives, config.max_doc_length),
        encoder.tokenize(negatives, config.max_doc_length),
    )
    shares = processes.shares(len(batch))
    all_p, all_n = processes.gather_rows(p, shares), processes.gather_rows(n, shares)
    # every process uses every gathered tensor, so all of them run the same collectives in the backward pass
    keep_in_graph = 0.0 * (all_p.sum() + all_n.sum()) if processes.distributed else 0.0
    if not local:
        return 0.0 * q.sum() + keep_in_graph, processes.total(0.0)
    embeddings = TripleEmbeddings(q, p, n, encoder.similarity, all_p, all_n, offset=rows.start)
    loss = regime.loss(embeddings, batch)
    share = len(local) / len(batch)
    whole = processes.total(float(loss.detach()) * share)
    return loss * share * processes.world_size + keep_in_graph, whole
