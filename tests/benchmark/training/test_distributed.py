"""Several processes: two CPU processes (gloo) give the same loss and gradients as one process with the same
global batch, for every in-batch loss, and every budgeted triple is consumed exactly once."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from benchmark.data.triples import Triple
from benchmark.encoder import BiEncoder, EncoderConfig
from benchmark.training.distributed import Processes, batch_loss, start, wrap
from regimes.base import REGISTRY, Regime

DOCS = {f"d{i}": f"document {i} about topic {i % 3} with words {' '.join(['w'] * (i % 5))}" for i in range(12)}
QUERIES = {f"q{i}": f"question {i} on topic {i % 3}" for i in range(6)}
TRIPLES = [Triple(f"q{i}", f"d{i}", f"d{i + 6}") for i in range(6)]

# every loss that looks at other triples of the batch, and one that does not
LOSSES = {
    "self-distillation in_batch": ("self-distillation", {}),
    "self-distillation distributed": ("self-distillation", {"target": "distributed", "in_batch": False}),
    "self-distillation pairwise": ("self-distillation", {"in_batch": False}),
    "teacher-distillation tas-b in-batch term": ("teacher-distillation", {"in_batch_weight": 0.75}),
    "batch-sampling infonce": ("batch-sampling", {"sampler": "hard-negatives"}),
}


def make_regime(name: str) -> Regime:
    regime_name, settings = LOSSES[name]
    regime = REGISTRY[regime_name](**settings)
    if regime_name == "teacher-distillation":  # teacher scores of every pair, made up but fixed
        generator = torch.Generator().manual_seed(0)
        regime.pair_scores = {(q, d): float(torch.rand(1, generator=generator)) for q in QUERIES for d in DOCS}
    return regime


def texts(batch):
    return (
        [QUERIES[t.query_id] for t in batch],
        [DOCS[t.positive_id] for t in batch],
        [DOCS[t.negative_id] for t in batch],
    )


def loss_and_gradients(model_dir: Path, loss_name: str, size: int, processes: Processes):
    encoder = BiEncoder(
        EncoderConfig(
            model=str(model_dir),
            precision="fp32",
            device="cpu",
            max_query_length=16,
            max_doc_length=24,
            dropout=0.0,
            attention_dropout=0.0,
        )
    )
    encoder.train()
    model = wrap(encoder, processes)
    weighted, whole = batch_loss(model, encoder, make_regime(loss_name), TRIPLES[:size], texts, processes)
    weighted.backward()
    gradients = {
        name: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for name, p in encoder.model.named_parameters()
    }
    return whole, gradients


SIZES = {"even batch": 6, "uneven batch": 5, "one triple": 1}  # one triple: the second process has no row
CASES = [(loss_name, size) for loss_name in LOSSES for size in SIZES]


def join(rank: int, world_size: int, port: int) -> Processes:
    """A spawned CPU process joins the others through accelerate, as under `accelerate launch` (gloo)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
    )
    torch.set_num_threads(1)
    processes = start(torch.device("cpu"))
    assert (processes.rank, processes.world_size) == (rank, world_size)
    return processes


def worker(rank: int, world_size: int, port: int, model_dir: str, out: str) -> None:
    processes = join(rank, world_size, port)
    for loss_name, size in CASES:
        whole, gradients = loss_and_gradients(Path(model_dir), loss_name, SIZES[size], processes)
        torch.save({"loss": whole, "gradients": gradients}, Path(out) / f"{loss_name} {size} rank{rank}.pt")
    torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_results(tiny_model_dir, tmp_path_factory) -> Path:
    """Every case computed by two CPU processes joined with gloo (one spawn for all cases)."""
    out = tmp_path_factory.mktemp("two-processes")
    mp.spawn(worker, args=(2, free_port(), str(tiny_model_dir), str(out)), nprocs=2)
    return out


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("loss_name", list(LOSSES))
def test_two_processes_match_one(tiny_model_dir, two_process_results, loss_name, size):
    """Same loss and same gradients (every parameter) as one process on the same global batch."""
    expected_loss, expected = loss_and_gradients(tiny_model_dir, loss_name, SIZES[size], Processes())
    for rank in range(2):
        result = torch.load(two_process_results / f"{loss_name} {size} rank{rank}.pt")
        assert result["loss"] == pytest.approx(expected_loss, rel=1e-5, abs=1e-7)
        assert any(g.abs().sum() > 0 for g in expected.values())
        for name, gradient in result["gradients"].items():
            torch.testing.assert_close(gradient, expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_wrong_layout_of_the_gathered_documents_changes_the_gradient(tiny_model_dir):
    """The check above can fail: anchoring a process's rows at the wrong offset gives another loss."""
    regime = make_regime("batch-sampling infonce")
    encoder = BiEncoder(EncoderConfig(model=str(tiny_model_dir), precision="fp32", device="cpu", dropout=0.0))
    model = wrap(encoder, Processes())
    right, _ = batch_loss(model, encoder, regime, TRIPLES, texts, Processes())
    from regimes.base import TripleEmbeddings

    q, p, n = model(*(encoder.tokenize(t, 24) for t in texts(TRIPLES)))
    shifted = TripleEmbeddings(q[3:], p[3:], n[3:], encoder.similarity, p, n, offset=0)  # rows 3.. anchored at 0
    assert float(regime.loss(shifted, TRIPLES).detach()) != pytest.approx(float(right.detach()), rel=1e-3)


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_every_triple_of_every_batch_goes_to_exactly_one_process(world_size):
    for size in (1, 2, 5, 32, 33):
        taken = []
        for rank in range(world_size):
            rows = Processes(rank, world_size).rows(size)
            taken.extend(range(size)[rows])
        assert sorted(taken) == list(range(size))
        assert sum(Processes(0, world_size).shares(size)) == size
