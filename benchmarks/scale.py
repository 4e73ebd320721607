"""What the training data costs at MS MARCO's size, by simulation: memory per triple and throughput.

For each N it writes, in a temporary folder, a synthetic dataset in MS MARCO passage's layout with realistic id
and text lengths (collection.tsv ``pid<TAB>text``, queries.train.tsv ``qid<TAB>text`` and
qidpidtriples.train.tsv ``qid<TAB>pid+<TAB>pid-``, the ids file ir_datasets caches for
msmarco-passage/train/triples-small), then, in a fresh process so that memory is that N's alone, reads it through
the toolkit's own path (``training_collection`` of the folder, its docpairs into the triple store), makes the
validation split and the seeded order, takes the budget at several fractions and looks up one batch's texts
(ir_datasets builds its docstore of the collection for that, as a run does).

It prints, per N, the resident memory before and after (RSS), the peak (ru_maxrss), the bytes of the store's
arrays, and triples per second of reading and splitting. The last line is ``bytes per triple: <number>`` for
the largest N: the resident growth (RSS after the split minus RSS before reading, over N), which counts
everything the data path left behind, not only the store's arrays; at small N it is dominated by allocator
noise, so for N below 100,000 the arrays' exact bytes stand in and the line says so.

    python benchmarks/scale.py --triples 1000000 --triples 4000000 --triples 16000000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MSMARCO_PASSAGES = 8_841_823  # pids 0 .. 8841822
MSMARCO_TRAIN_QIDS = 1_185_870  # train qids lie below this
TRIPLES_PER_QUERY = 100  # triples-small: 39.8M triples over some 400k queries (an assumption; see the README)
TRIPLES_PER_DOCUMENT = 6  # distinct passages named by the docpairs: one per this many triples (an assumption)
PASSAGE_WORDS = 56  # MS MARCO passages: about 56 words (some 340 characters); queries about 6
QUERY_WORDS = 6
RSS_HONEST_FROM = 100_000  # below this many triples, page-level RSS noise outweighs the store


def counts(text: str) -> list[int]:
    """``1000000`` or ``1000000,4000000``: positive whole numbers."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number or a comma-separated list") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive numbers of triples such as 1000000")
    return values


def counts_f(text: str) -> list[float]:
    """``0.135,0.25,1.0``: fractions in (0, 1]."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of fractions") from None
    if not values or not all(0 < value <= 1 for value in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give fractions in (0, 1] such as 0.135,0.5,1.0")
    return values


def resident_bytes() -> int:
    """The process's resident set now (Linux /proc; else the peak, the best the platform offers)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_bytes()


def peak_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def texts(rng: np.random.Generator, count: int, words: int, vocabulary: np.ndarray) -> list[str]:
    """``count`` texts of about ``words`` words each, drawn from a pool so that writing 8.8M stays fast."""
    lengths = np.maximum(1, rng.normal(words, words / 4, size=4096).astype(int))
    pool = [" ".join(vocabulary[rng.integers(0, len(vocabulary), size=length)]) for length in lengths]
    return [pool[i] for i in rng.integers(0, len(pool), size=count)]


def write_dataset(folder: Path, triples: int, seed: int) -> dict:
    """A synthetic MS MARCO-layout folder with ``triples`` docpairs; returns its sizes."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = np.array(["".join(letters[rng.integers(0, 26, size=rng.integers(2, 10))]) for _ in range(5000)])
    queries = max(1, min(MSMARCO_TRAIN_QIDS, -(-triples // TRIPLES_PER_QUERY)))
    documents = max(2, min(MSMARCO_PASSAGES, -(-triples // TRIPLES_PER_DOCUMENT)))
    qids = rng.choice(MSMARCO_TRAIN_QIDS, size=queries, replace=False)
    pids = rng.choice(MSMARCO_PASSAGES, size=documents, replace=False)
    positive_of = rng.integers(0, documents, size=queries)
    step = 1_000_000
    with open(folder / "collection.tsv", "w", encoding="utf-8") as out:
        for start in range(0, documents, step):
            chunk = pids[start : start + step]
            out.writelines(
                f"{pid}\t{text}\n"
                for pid, text in zip(chunk, texts(rng, len(chunk), PASSAGE_WORDS, vocabulary), strict=True)
            )
    with open(folder / "queries.train.tsv", "w", encoding="utf-8") as out:
        out.writelines(
            f"{qid}\t{text}\n" for qid, text in zip(qids, texts(rng, queries, QUERY_WORDS, vocabulary), strict=True)
        )
    with open(folder / "qidpidtriples.train.tsv", "w", encoding="utf-8") as out:
        for start in range(0, triples, step):
            size = min(step, triples - start)
            query = rng.integers(0, queries, size=size)
            negative = rng.integers(0, documents, size=size)
            out.writelines(
                f"{q}\t{p}\t{n}\n"
                for q, p, n in zip(qids[query], pids[positive_of[query]], pids[negative], strict=True)
            )
    files = ("collection.tsv", "queries.train.tsv", "qidpidtriples.train.tsv")
    return {"queries": queries, "documents": documents, "bytes": {f: (folder / f).stat().st_size for f in files}}


def measure(folder: Path, triples: int, seed: int, validation_fraction: float, fractions: list[float]) -> dict:
    """Run the toolkit's data path on ``folder`` in this (fresh) process; its memory and times."""
    from benchmark.data.budget import split_validation
    from benchmark.data.collections import training_collection
    from benchmark.data.prepare import text_lookup

    gc.collect()
    before = resident_bytes()
    started = time.perf_counter()
    collection = training_collection(str(folder))
    store = collection.docpairs()
    read_s = time.perf_counter() - started
    assert len(store) == triples, (len(store), triples)
    gc.collect()
    after_read = resident_bytes()
    started = time.perf_counter()
    split = split_validation(store, validation_fraction, seed)
    budgets = {f: len(split.budget(f)) for f in fractions}
    split_s = time.perf_counter() - started
    gc.collect()
    after_split = resident_bytes()
    started = time.perf_counter()
    queries, positives, negatives = text_lookup(collection)(split.budget(fractions[0])[:32])
    texts_s = time.perf_counter() - started
    held = store.nbytes + split.ordered_triples.rows.nbytes + split.validation_triples.rows.nbytes
    pairs = teacher_pairs(split.ordered_triples, seed)
    return {
        **pairs,
        "triples": triples,
        "training_triples": len(split.ordered_triples),
        "validation_queries": len(split.validation_queries),
        "budgets": budgets,
        "read_s": read_s,
        "split_s": split_s,
        "first_batch_texts_s": texts_s,
        "first_batch_characters": sum(map(len, queries + positives + negatives)),
        "rss_before": before,
        "rss_after_read": after_read,
        "rss_after_split": after_split,
        "rss_peak": peak_bytes(),
        "array_bytes": held,
    }


def teacher_pairs(training_triples, seed: int) -> dict:
    """What a teacher's scores of every pair of the training triples cost to hold (``teacher_scale=auto`` and the
    ensemble's standardisation score all of them): the pairs from the store's codes and one score each. The
    scores are random numbers: the teacher's compute is not simulated, only the memory its scores take."""
    from benchmark.data.pairs import PairScores
    from regimes.teachers import training_pairs

    gc.collect()
    before = resident_bytes()
    started = time.perf_counter()
    pairs = training_pairs(training_triples)
    scores = PairScores(pairs, np.random.default_rng(seed).standard_normal(len(pairs)))
    built_s = time.perf_counter() - started
    gc.collect()
    grown = resident_bytes() - before
    return {
        "teacher_pairs": len(scores),
        "teacher_pairs_s": built_s,
        "teacher_pairs_rss": grown,
        "teacher_pairs_bytes": scores.nbytes,
    }


def run_one(triples: int, args: argparse.Namespace) -> dict:
    """Write the dataset, then measure it in a child process (a clean heap and its own peak)."""
    with tempfile.TemporaryDirectory(prefix="scale-") as temporary:
        folder = Path(temporary) / "msmarco-like"
        folder.mkdir()
        started = time.perf_counter()
        written = write_dataset(folder, triples, args.seed)
        written["write_s"] = time.perf_counter() - started
        command = [sys.executable, __file__, "--child", str(folder), str(triples), str(args.seed)]
        command += [str(args.validation_fraction), ",".join(map(str, args.fractions))]
        root = str(Path(__file__).resolve().parents[1])  # this checkout's toolkit, not another installed one
        path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "IR_DATASETS_HOME": str(Path(temporary) / "ir_datasets"), "PYTHONPATH": path}
        child = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if child.returncode != 0:
            raise SystemExit(f"scale: the measuring process failed for {triples} triples:\n{child.stderr[-3000:]}")
        return {**written, **json.loads(child.stdout.strip().splitlines()[-1])}


def report(row: dict) -> tuple[float, str]:
    """Print one N's numbers; return its bytes per triple and how that was measured."""
    n = row["triples"]
    mib = 1 << 20
    grown = row["rss_after_split"] - row["rss_before"]
    print(
        f"{n:,} triples ({row['queries']:,} queries, {row['documents']:,} passages; files "
        f"{sum(row['bytes'].values()) / mib:,.0f} MiB, written in {row['write_s']:.1f} s)"
    )
    print(
        f"  read docpairs into the store: {row['read_s']:.1f} s ({n / row['read_s']:,.0f} triples/s); "
        f"split, seeded order and budgets: {row['split_s']:.1f} s ({n / row['split_s']:,.0f} triples/s)"
    )
    print(
        f"  {row['training_triples']:,} training triples, {row['validation_queries']:,} validation queries; "
        f"budgets {', '.join(f'{f}: {size:,}' for f, size in row['budgets'].items())}"
    )
    print(f"  first batch's texts (builds the ir_datasets docstore): {row['first_batch_texts_s']:.1f} s")
    print(
        f"  resident: {row['rss_before'] / mib:,.0f} MiB before reading, {row['rss_after_read'] / mib:,.0f} after "
        f"reading, {row['rss_after_split'] / mib:,.0f} after the split; peak {row['rss_peak'] / mib:,.0f} MiB"
    )
    print(
        f"  per triple: {grown / n:.1f} bytes resident growth (RSS), {row['array_bytes'] / n:.1f} bytes in the "
        "store's arrays (codes, id tables, order and validation rows)"
    )
    pairs = row["teacher_pairs"]
    print(
        f"  teacher scores of every training pair: {pairs:,} pairs built in {row['teacher_pairs_s']:.1f} s, "
        f"{row['teacher_pairs_rss'] / max(pairs, 1):.1f} bytes a pair resident growth (RSS), "
        f"{row['teacher_pairs_bytes'] / max(pairs, 1):.1f} in the arrays (random scores: memory, not the teacher)"
    )
    if n >= RSS_HONEST_FROM:
        return grown / n, "resident growth (RSS)"
    return row["array_bytes"] / n, f"the store's arrays (RSS is noise below {RSS_HONEST_FROM:,} triples)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        folder, triples, seed, validation_fraction, fractions = argv[1:6]
        found = measure(Path(folder), int(triples), int(seed), float(validation_fraction), counts_f(fractions))
        print(json.dumps(found))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triples", type=counts, action="append", help="N (repeat it or give a list)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--fractions", type=counts_f, default=[0.135, 0.25, 0.5, 1.0])
    args = parser.parse_args(argv)
    sizes = sorted({n for group in args.triples or [[20_000]] for n in group})
    measured = (0.0, "")
    for n in sizes:
        measured = report(run_one(n, args))
    print(f"measured as {measured[1]} at {sizes[-1]:,} triples")
    print(f"bytes per triple: {measured[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
