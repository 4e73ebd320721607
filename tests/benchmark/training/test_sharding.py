"""Corpus encoding and teacher scoring shared over two CPU processes (gloo): the same embeddings (fp32 to float
noise, bf16 within bf16 tolerance), the same nDCG@10 and the same cached teacher scores as one process."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from transformers import BertForSequenceClassification

from benchmark.data.collections import evaluation_collection
from benchmark.data.pairs import PairScores
from benchmark.encoder import BiEncoder, EncoderConfig, cpu_supports_bf16
from benchmark.evaluation.systems import CHUNK, EvaluationEnvironment, experiment, topics_and_qrels
from benchmark.measurement.phases import Meter
from benchmark.training.distributed import ONE_PROCESS, Processes
from regimes.teachers import BiEncoderTeacher, CrossEncoderTeacher, cached_teacher_scores
from tests.benchmark.training.test_distributed import free_port, join
from tests.tiny import save_tiny_bert, write_beir_folder

DOCUMENT_COUNT = 2 * CHUNK + 300  # three rounds of runs over two processes, the second process idle in the last
WORDS = "bone lung heart blood sugar sleep salt coffee vaccine statin cohort risk trial dose".split()
PRECISIONS = ["fp32", "bf16"] if cpu_supports_bf16() else ["fp32"]
TOLERANCE = {"fp32": {"rtol": 1e-5, "atol": 1e-6}, "bf16": {"rtol": 2e-2, "atol": 2e-2}}  # bf16: 8 mantissa bits


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A BEIR folder of DOCUMENT_COUNT documents of 3 to 40 words; each query is the text of its one relevant
    document (so even a random encoder retrieves it) and the batches have very different lengths."""
    generator = random.Random(0)
    documents = {
        f"d{k}": ("", " ".join(generator.choices(WORDS, k=generator.randint(3, 40)))) for k in range(DOCUMENT_COUNT)
    }
    judged = generator.sample(range(DOCUMENT_COUNT), 12)
    queries = {f"q{k}": documents[f"d{k}"][1] for k in judged}
    qrels = {"test": [(f"q{k}", f"d{k}") for k in judged]}
    return write_beir_folder(tmp_path_factory.mktemp("corpus"), documents, queries, qrels)


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-cross"), BertForSequenceClassification, num_labels=1)


def encoder(model_dir: str, precision: str) -> BiEncoder:
    config = EncoderConfig(model=model_dir, precision=precision, device="cpu", max_query_length=48)
    return BiEncoder(config).for_inference()


def teacher_pairs(corpus: Path) -> list[tuple[str, str]]:
    """An odd number of (query, document) pairs, so the two shares differ in size."""
    collection = evaluation_collection(str(corpus))
    return [(q, f"d{k}") for q in sorted(collection.queries) for k in range(0, 30, 7)][:37]


def evaluate_and_score(
    processes: Processes, model_dir: str, cross_dir: str, corpus: Path, out: Path
) -> dict[str, object] | None:
    """The main process's side: every corpus indexed and evaluated, every teacher's pairs scored into its cache
    (under ``out``); the others serve. Returns the embeddings, nDCG@10 and cached scores (main process only)."""
    collection = evaluation_collection(str(corpus))
    if not processes.is_main:
        processes.serve()
        return None
    meter = Meter(torch.device("cpu"), energy=False)
    topics, qrels = topics_and_qrels(collection, None)
    found: dict[str, object] = {}
    for precision in PRECISIONS:
        env = EvaluationEnvironment(collection, out / "cache", meter, out / f"work-{precision}", processes)
        system = env.dense(encoder(model_dir, precision), precision)
        [index] = env._indexes.values()
        docnos, vectors, _ = index.payload()
        found[f"vectors {precision}"], found[f"docnos {precision}"] = np.array(vectors), list(docnos)
        table = experiment({"initial": system}, topics, qrels, "initial", out / f"runs-{precision}")
        found[f"nDCG@10 {precision}"] = float(table.loc[0, "nDCG@10"])
    config = EncoderConfig(model=model_dir, precision="fp32", device="cpu")
    context = SimpleNamespace(
        encoder_config=config,
        collection=collection,
        cache_dir=out / "cache",
        meter=meter,
        label="teacher-distillation",
        cell="c",
        processes=processes,
    )
    for teacher in (BiEncoderTeacher(model_dir), CrossEncoderTeacher(cross_dir)):
        teacher.load(config)
        cached_teacher_scores(teacher, teacher_pairs(corpus), context)
    found["score caches"] = {
        path.name: [[q, d, score] for (q, d), score in PairScores.load(path).items()]
        for path in (out / "cache" / "teacher-scores").glob("*.npz")
    }
    found["phases"] = [(record.phase, record.count) for record in meter.records]
    processes.broadcast("done")
    return found


def worker(rank: int, world_size: int, port: int, model_dir: str, cross_dir: str, corpus: str, out: str) -> None:
    processes = join(rank, world_size, port)
    found = evaluate_and_score(processes, model_dir, cross_dir, Path(corpus), Path(out))
    if found is not None:
        torch.save(found, Path(out) / "found.pt")
    torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def one_and_two(tiny_model_dir, cross_encoder_dir, corpus, tmp_path_factory) -> tuple[dict, dict]:
    """The same work in one process, and in two joined with gloo."""
    one_out, two_out = tmp_path_factory.mktemp("one-process"), tmp_path_factory.mktemp("two-processes")
    one = evaluate_and_score(ONE_PROCESS, str(tiny_model_dir), str(cross_encoder_dir), corpus, one_out)
    arguments = (str(tiny_model_dir), str(cross_encoder_dir), str(corpus), str(two_out))
    mp.spawn(worker, args=(2, free_port(), *arguments), nprocs=2)
    return one, torch.load(two_out / "found.pt", weights_only=False)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_two_processes_index_the_same_embeddings_and_measure_the_same_ndcg(one_and_two, precision):
    one, two = one_and_two
    assert two[f"docnos {precision}"] == one[f"docnos {precision}"] == [f"d{k}" for k in range(DOCUMENT_COUNT)]
    vectors = one[f"vectors {precision}"]
    assert vectors.shape == (DOCUMENT_COUNT, 32) and np.abs(vectors).sum(1).min() > 0  # every row was written
    np.testing.assert_allclose(two[f"vectors {precision}"], vectors, **TOLERANCE[precision])
    assert two[f"nDCG@10 {precision}"] == one[f"nDCG@10 {precision}"] > 0


def test_two_processes_cache_the_same_teacher_scores(one_and_two):
    one, two = one_and_two
    assert sorted(two["score caches"]) == sorted(one["score caches"]) and len(one["score caches"]) == 2
    for name, scores in one["score caches"].items():
        shared = two["score caches"][name]
        assert [pair for *pair, _ in shared] == [pair for *pair, _ in scores] and len(scores) == 37
        assert len({score for *_, score in scores}) > 1  # the scores tell the pairs apart
        np.testing.assert_allclose([s for *_, s in shared], [s for *_, s in scores], rtol=1e-5, atol=1e-6)
    assert two["phases"] == one["phases"]  # the same phases, counting every document and pair once


def test_the_embedding_check_can_fail(one_and_two):
    """Runs handed to the wrong process, or a shifted gather, would put other documents' vectors in the rows."""
    one, _ = one_and_two
    vectors = one["vectors fp32"]
    swapped = np.concatenate([vectors[CHUNK : 2 * CHUNK], vectors[:CHUNK], vectors[2 * CHUNK :]])
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(swapped, vectors, **TOLERANCE["bf16"])
