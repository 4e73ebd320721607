"""The main command's compute floor: the FLOPs of a finished run's work over this machine's matmul peak, against
the run's measured wall-clock, per phase.

    python benchmarks/compute_floor.py --run results/<run-id>
    python benchmarks/compute_floor.py            # runs `python -m benchmark run --regimes all --data-fraction 0.135`

Measured: every wall-clock (the run's phases.csv and manifest.json) and this machine's bf16 and fp32 matmul peaks
(benchmarks/flops.py, in this process). Derived without touching the run: the FLOPs, from the model's shape and the
real token counts of the run's texts, re-tokenised with the run's tokenizer and max lengths (the run's own triples,
split, budgets, validation set and evaluation sets, rebuilt from its manifest and the cache it used): every corpus
encoding of every evaluated encoder, every training step forward and backward, every validation encoding, the
initial encoder's pairwise accuracy and teacher-scale margins. Padding is not useful work, so it is not in the
floor; the FLOPs spent on it are estimated from the batches (training batches in the budget's order) and shown as
part of the time above the floor. Phases whose FLOPs are not modelled (data preparation, BM25, k-means, a
teacher's scoring) count entirely as time above the floor. Phases replayed from a cache (done by an earlier run)
are left out of both sides. The last line is ``main command: wall <s> s, floor <s> s, ratio <r>``.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from flops import BACKWARD_FACTOR, EncoderShape, matmul_peak
from rich.console import Console
from rich.table import Table

MAIN_COMMAND = ["python", "-m", "benchmark", "run", "--regimes", "all", "--data-fraction", "0.135"]
ENCODE_BATCH = 64  # BiEncoder.encode's default batch size (validation, evaluation, pairwise accuracy)
INDEX_CHUNK = 1024  # pyterrier-dr hands the corpus to encode_docs in chunks of its batch size (1024)


@dataclass
class Work:
    """One phase's modelled compute: FLOPs of real tokens, FLOPs as run (with padding), and how it was derived."""

    flops: float = 0.0
    padded_flops: float = 0.0
    how: list[str] = field(default_factory=list)
    modelled: bool = True

    def add(self, flops: float, padded: float) -> None:
        self.flops += flops
        self.padded_flops += padded


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def lengths_of(tokenizer, texts: Sequence[str], max_length: int) -> list[int]:
    """Real token counts of ``texts`` as the encoder tokenises them (with special tokens, truncated)."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]


def sorted_batches(lengths: Sequence[int], batch_size: int, chunk: int | None = None) -> list[list[int]]:
    """BiEncoder.encode's batches: longest first within each chunk handed to it, then ``batch_size`` at a time."""
    chunk = chunk or max(1, len(lengths))
    batches = []
    for start in range(0, len(lengths), chunk):
        ordered = sorted(lengths[start : start + chunk], reverse=True)
        batches += [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    return batches


def encode_work(shape: EncoderShape, lengths: Sequence[int], chunk: int | None = None) -> tuple[float, float]:
    """Forward FLOPs of an inference encoding, real and as batched."""
    return shape.sequences_flops(lengths), shape.padded_flops(sorted_batches(lengths, ENCODE_BATCH, chunk))


def cell_parts(cell: str) -> tuple[str, float, int]:
    """``label|f=0.135|seed=42`` -> (label, 0.135, 42)."""
    found = re.fullmatch(r"(.*)\|f=([^|]+)\|seed=(\d+)", cell)
    if not found:
        raise ValueError(f"not a cell id: {cell!r}")
    return found.group(1), float(found.group(2)), int(found.group(3))


class RunWork:
    """A finished run rebuilt far enough to count its tokens: data, triples, splits, validation sets."""

    def __init__(self, directory: Path) -> None:
        from benchmark.common.files import read_json
        from benchmark.data.collections import default_evaluation, evaluation_collection, training_collection
        from benchmark.encoder import BiEncoder
        from benchmark.measurement.phases import Meter
        from benchmark.run.config import from_stored

        self.directory = directory
        self.manifest = read_json(directory / "manifest.json")
        self.phases = read_rows(directory / "phases.csv")
        self.results = read_rows(directory / "results.csv")
        self.config = from_stored(self.manifest["config"])
        self.precision = self.manifest.get("precision") or "fp32"
        self.encoder = BiEncoder(self.config.encoder)
        self.tokenizer = self.encoder.tokenizer
        self.shape = EncoderShape.of(self.encoder.model)
        self.meter = Meter(torch.device("cpu"), energy=False)  # rebuilding must not be charged to anything
        self.train_collection = training_collection(self.config.data.dataset)
        specs = self.config.data.evaluation or (default_evaluation(self.config.data.dataset),)
        self.eval_collections = [evaluation_collection(spec) for spec in specs]
        self._triples = None
        self._splits: dict = {}
        self._validation: dict = {}
        self._lengths: dict = {}

    # --- the run's data, rebuilt -----------------------------------------------------------------------
    @property
    def triples(self):
        if self._triples is None:
            from benchmark.data.prepare import mined_triples

            self._triples, _ = mined_triples(self.train_collection, self.config, self.meter)
        return self._triples

    def split(self, seed: int):
        if seed not in self._splits:
            from benchmark.data.budget import split_validation

            self._splits[seed] = split_validation(self.triples, self.config.data.validation_fraction, seed)
        return self._splits[seed]

    def validation(self, seed: int):
        if seed not in self._validation:
            from benchmark.evaluation.systems import initial_rankings
            from benchmark.training.validation import validation_set

            rankings = initial_rankings(self.train_collection, self.encoder, self.config.cache_dir, self.meter)
            self._validation[seed] = validation_set(
                self.train_collection, self.split(seed), self.triples, self.config, self.meter, seed, rankings
            )
        return self._validation[seed]

    def query_lengths(self, collection, query_ids: Sequence[str]) -> list[int]:
        texts = [collection.queries[q] for q in query_ids]
        return lengths_of(self.tokenizer, texts, self.config.encoder.max_query_length)

    def doc_lengths(self, collection, doc_ids: Sequence[str]) -> dict[str, int]:
        """Token counts of documents by id, cached per corpus."""
        cache = self._lengths.setdefault(collection.corpus_key, {})
        missing = [d for d in dict.fromkeys(doc_ids) if d not in cache]
        if missing:
            texts = collection.document_texts(missing)
            cache.update(
                zip(missing, lengths_of(self.tokenizer, texts, self.config.encoder.max_doc_length), strict=True)
            )
        return cache

    def corpus_lengths(self, collection) -> list[int]:
        ids = [doc_id for doc_id, _ in collection.iter_documents()]
        found = self.doc_lengths(collection, ids)
        return [found[d] for d in ids]

    # --- the work of each phase ----------------------------------------------------------------------
    def train(self, row: dict, work: Work) -> None:
        label, fraction, seed = cell_parts(row["cell"])
        consumed = int(row["count"])
        budget = self.split(seed).budget(fraction)
        epochs = math.ceil(consumed / len(budget)) if budget else 0
        taken = (list(budget) * max(1, epochs))[:consumed]
        batch = self.config.training.batch_size
        queries = self.query_lengths(self.train_collection, [t.query_id for t in taken])
        docs = self.doc_lengths(self.train_collection, [d for t in taken for d in (t.positive_id, t.negative_id)])
        positives = [docs[t.positive_id] for t in taken]
        negatives = [docs[t.negative_id] for t in taken]
        factor = 1 + BACKWARD_FACTOR
        real = sum(self.shape.sequences_flops(side) for side in (queries, positives, negatives))
        padded = sum(
            self.shape.padded_flops([side[i : i + batch] for i in range(0, len(side), batch)])
            for side in (queries, positives, negatives)
        )
        work.add(factor * real, factor * padded)
        exact = "every budget triple once" if consumed == len(budget) else f"{consumed} of {len(budget)} (a prefix)"
        work.how.append(f"{label}: {consumed} triples ({exact}), forward + backward")

    def validate(self, row: dict, work: Work) -> None:
        validation = self.validation(_seed(row["cell"]))
        doc_ids = sorted(validation.doc_texts)
        docs = self.doc_lengths(self.train_collection, doc_ids)
        d_real, d_padded = encode_work(self.shape, [docs[d] for d in doc_ids])
        q_real, q_padded = encode_work(self.shape, self.query_lengths(self.train_collection, list(validation.queries)))
        work.add(d_real + q_real, d_padded + q_padded)
        note = f"{len(doc_ids)} documents + {len(validation.queries)} queries per validation"
        if note not in work.how:
            work.how.append(note)

    def index(self, row: dict, work: Work) -> None:
        count = int(row["count"])
        collections = [self.train_collection, *self.eval_collections]
        collection = next((c for c in collections if c.document_count == count), self.eval_collections[0])
        lengths = self.corpus_lengths(collection)
        work.add(*encode_work(self.shape, lengths, INDEX_CHUNK))
        work.how.append(f"{row['cell']}: {len(lengths)} documents of {collection.name}")

    def evaluate(self, row: dict, work: Work) -> None:
        from benchmark.evaluation.systems import topics_and_qrels

        collection = next((c for c in self.eval_collections if c.name == row["cell"]), self.eval_collections[0])
        topics, _ = topics_and_qrels(collection, self.config.data.max_eval_queries)
        rows = [r for r in self.results if r["eval_set"] == collection.name]
        dense = [r for r in rows if r["system"] != "bm25" and r.get("status", "ok") == "ok"]
        q_real, q_padded = encode_work(self.shape, self.query_lengths(collection, list(topics["qid"])))
        retrieval = 2.0 * len(topics) * collection.document_count * self.shape.hidden  # query x corpus dot products
        work.add(len(dense) * (q_real + retrieval), len(dense) * (q_padded + retrieval))
        work.how.append(f"{len(topics)} queries x {len(dense)} dense systems + retrieval (estimated: all dense)")

    def triples_encoding(self, triples, work: Work, note: str) -> None:
        """The initial encoder's inference encoding of the distinct queries and documents of ``triples``."""
        queries = sorted({t.query_id for t in triples})
        doc_ids = sorted({d for t in triples for d in (t.positive_id, t.negative_id)})
        docs = self.doc_lengths(self.train_collection, doc_ids)
        d_real, d_padded = encode_work(self.shape, [docs[d] for d in doc_ids])
        q_real, q_padded = encode_work(self.shape, self.query_lengths(self.train_collection, queries))
        work.add(d_real + q_real, d_padded + q_padded)
        work.how.append(f"{note}: {len(doc_ids)} documents + {len(queries)} queries")

    def pairwise_accuracy(self, row: dict, work: Work) -> None:
        triples = self.split(_seed(row["cell"])).validation_triples
        self.triples_encoding(triples, work, "initial encoder (a teacher's encoding is not modelled)")

    def teacher_scale(self, row: dict, work: Work) -> None:
        triples = self.split(_seed(row["cell"])).ordered_triples
        self.triples_encoding(triples, work, "initial encoder margins on every training triple")


def _seed(cell: str) -> int:
    found = re.search(r"seed=(\d+)", cell)
    return int(found.group(1)) if found else 42


MODELLED = {
    "train": RunWork.train,
    "validate": RunWork.validate,
    "index": RunWork.index,
    "evaluate": RunWork.evaluate,
    "pairwise-accuracy": RunWork.pairwise_accuracy,
    "teacher-scale": RunWork.teacher_scale,
}


def phase_key(row: dict) -> str:
    if row["phase"] == "index" and row["cell"] == "bm25":
        return "index (bm25)"
    return row["phase"]


def account(run: RunWork) -> tuple[dict[str, Work], dict[str, float], float]:
    """Per phase: the modelled work and the measured wall-clock of this run's own (not replayed) phases; and the
    wall-clock of replayed phases, left out of both."""
    works: dict[str, Work] = {}
    walls: dict[str, float] = defaultdict(float)
    replayed = 0.0
    for row in run.phases:
        if row.get("aggregates"):
            continue  # a sum of other phases (tune)
        if row.get("reused") == "True":
            replayed += float(row["wall_s"])
            continue
        key = phase_key(row)
        walls[key] += float(row["wall_s"])
        work = works.setdefault(key, Work(modelled=key in MODELLED))
        if key in MODELLED:
            MODELLED[key](run, row, work)
    return works, dict(walls), replayed


def where(key: str, work: Work, wall: float, floor: float, padded_floor: float, peak: float) -> str:
    """Where a phase's time above its floor goes, from the figures."""
    if not work.modelled or work.flops == 0:
        return "all of it: work with no modelled encoder FLOPs (I/O, BM25, k-means, teachers, tokenising, Python)"
    padding = padded_floor - floor
    rest = wall - padded_floor
    achieved = work.padded_flops / wall / 1e9 if wall > 0 else math.nan
    if rest < 0:
        return (
            f"none: it ran at {achieved:.0f} GFLOP/s, above the {peak / 1e9:.0f} GFLOP/s peak measured now "
            "(the machine is busier now than during the run, so this floor is too high)"
        )
    return (
        f"padding {padding:.1f} s ({(work.padded_flops / work.flops - 1) * 100:.0f}% more FLOPs); "
        f"{rest:.1f} s kernels below peak ({achieved:.0f} of {peak / 1e9:.0f} GFLOP/s as run: attention, "
        f"elementwise, tokenising, optimizer, Python)"
    )


def render(run: RunWork, console: Console) -> str:
    """Print the per-phase table and return the last line."""
    works, walls, replayed = account(run)
    dtype = torch.bfloat16 if run.precision == "bf16" else torch.float32
    peak_bf16, peak_fp32 = matmul_peak(torch.bfloat16), matmul_peak(torch.float32)
    peak = peak_bf16 if dtype == torch.bfloat16 else peak_fp32
    table = Table(title=f"Compute floor of run {run.directory.name} ({run.precision}; peak {peak / 1e9:.0f} GFLOP/s)")
    for column in ("phase", "GFLOP", "floor s", "wall s", "ratio", "where the time above the floor goes"):
        table.add_column(
            column, justify="left" if column in ("phase", "where the time above the floor goes") else "right"
        )
    total_flops = 0.0
    for key in sorted(walls, key=lambda k: -walls[k]):
        work, wall = works[key], walls[key]
        floor, padded_floor = work.flops / peak, work.padded_flops / peak
        total_flops += work.flops
        ratio = f"{wall / floor:.1f}" if floor > 0 else "-"
        gflop = f"{work.flops / 1e9:,.0f}" if work.modelled else "not modelled"
        table.add_row(
            key, gflop, f"{floor:.1f}", f"{wall:.1f}", ratio, where(key, work, wall, floor, padded_floor, peak)
        )
    wall = float(run.manifest.get("wall_s") or sum(walls.values()))
    outside = wall - sum(walls.values())
    table.add_row(
        "outside phases", "not modelled", "0.0", f"{outside:.1f}", "-", "loading models, writing files, tables, claims"
    )
    console.print(table)
    floor = total_flops / peak
    console.print(
        f"model: {run.shape} ({sum(p.numel() for p in run.encoder.model.parameters()) / 1e6:.1f} M parameters)"
    )
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    console.print(
        f"measured here, now: bf16 matmul peak {peak_bf16 / 1e9:.0f} GFLOP/s, fp32 {peak_fp32 / 1e9:.0f} GFLOP/s "
        f"(load average {load} on {os.cpu_count()} CPUs: on a busy machine the peak is low and the floor high)"
    )
    console.print(f"measured by the run: wall-clock {wall:.1f} s (manifest.json), per phase (phases.csv)")
    console.print(
        "estimated: FLOPs from the model's shape and re-tokenised texts (see the docstring for what is exact)"
    )
    for key in walls:
        for how in works[key].how[:6]:
            console.print(f"  {key}: {how}")
    if replayed:
        console.print(
            f"left out: {replayed:.1f} s of phases replayed from a cache (their work was done by an earlier run)"
        )
    return f"main command: wall {wall:.1f} s, floor {floor:.1f} s, ratio {wall / floor:.2f}"


def run_main_command(out: Path) -> Path:
    """Run the main command into ``out`` and return its run folder."""
    subprocess.run([sys.executable, *MAIN_COMMAND[1:], "--out", str(out)], check=True)
    finished = sorted(p.parent for p in out.glob("*/results.csv"))
    return finished[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a finished run folder, results/<run-id>")
    parser.add_argument("--out", type=Path, default=Path("results"), help="where the main command writes (no --run)")
    args = parser.parse_args()
    directory = args.run
    if directory is not None and not (directory / "results.csv").exists():
        print(
            f"compute_floor: {directory} holds no results.csv; pass a finished run's folder, results/<run-id>",
            file=sys.stderr,
        )
        sys.exit(2)
    if directory is None:
        directory = run_main_command(args.out)
    from benchmark.common.progress import quiet

    console = Console(width=200)
    with quiet():  # the toolkit's own status lines while the run's data is rebuilt
        last = render(RunWork(directory), console)
    print(last)


if __name__ == "__main__":
    main()
