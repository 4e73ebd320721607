"""Training throughput of teacher distillation (Margin-MSE): this project's loop against sentence-transformers'
SentenceTransformerTrainer with MarginMSELoss, side by side in one run.

Same model (all-MiniLM-L6-v2), the same SciFact triples (BM25-mined: run the main command once first, or the
script mines them), the same teacher margins (the default ensemble teacher's, from the cache), batch size and max
length; each side in the best precision it offers here (ours: --precision auto; sentence-transformers: bf16
autocast through the Trainer when the CPU has AVX-512 BF16, else fp32). Prints triples per second and the ratio.

Our loop trains without dropout on attention probabilities by default (see `--attention-dropout`); the Trainer
keeps the model's 0.1. So that the ratio does not hide where the speed comes from, the Trainer is timed twice:
as a user gets it, and with attention dropout 0 like ours (like for like: same hidden dropout 0.1, bf16
autocast, batch, lengths, triples). What is left of the difference is this project's CPU kernels for the same
function (benchmark/cpu_training.py: dropout masks four to a random word, attention in fp32 while training).

    python benchmarks/training_throughput.py [--steps 6] [--batch-size 32] [--dropout 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmark.encoder import DEFAULT_MODEL, BiEncoder, EncoderConfig, cpu_supports_bf16, resolve_model
from regimes.base import TripleEmbeddings
from regimes.teacher_distillation import MarginMSELoss


def load_triples(count: int):
    """The first triples of SciFact's train split with margins of the bi-encoder teacher, made here."""
    from benchmark.data.bm25 import BM25Index, mine_triples
    from benchmark.data.collections import training_collection
    from regimes.teachers import TeacherInputs, parse_teacher

    collection = training_collection("beir/scifact")
    with tempfile.TemporaryDirectory() as cache:
        index = BM25Index(collection, Path(cache))
        triples = mine_triples(index, collection.queries, collection.qrels, 4, 100)[:count]
        teacher = parse_teacher("bi-encoder:" + DEFAULT_MODEL)
        config = EncoderConfig()
        teacher.load(config)
        pairs = sorted({(t.query_id, d) for t in triples for d in (t.positive_id, t.negative_id)})
        scores = teacher.score_pairs(pairs, TeacherInputs(collection, Path(cache), config))
    queries = [collection.queries[t.query_id] for t in triples]
    positives = collection.document_texts([t.positive_id for t in triples])
    negatives = collection.document_texts([t.negative_id for t in triples])
    margins = [scores[(t.query_id, t.positive_id)] - scores[(t.query_id, t.negative_id)] for t in triples]
    return queries, positives, negatives, margins


def ours(data, batch_size: int, steps: int, max_length: int, dropout: float | None) -> float:
    """This project's loop with its default settings (attention dropout 0)."""
    queries, positives, negatives, margins = data
    encoder = BiEncoder(EncoderConfig(max_query_length=max_length, max_doc_length=max_length, dropout=dropout))
    optimizer = torch.optim.AdamW(encoder.model.parameters(), lr=2e-5)
    loss_fn = MarginMSELoss()
    encoder.train()

    def step(i: int) -> None:
        s = slice(i * batch_size, (i + 1) * batch_size)
        embeddings = TripleEmbeddings(
            encoder.embed(queries[s], "query"),
            encoder.embed(positives[s], "doc"),
            encoder.embed(negatives[s], "doc"),
            encoder.similarity,
        )
        loss = loss_fn(embeddings, torch.tensor(margins[s]))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(0)  # warm-up
    started = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    return steps * batch_size / (time.perf_counter() - started)


def sentence_transformers_side(
    data, batch_size: int, steps: int, max_length: int, attention_dropout: float | None = None
) -> tuple[float, str]:
    """SentenceTransformerTrainer + MarginMSELoss; ``attention_dropout`` None keeps the model's own."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.losses import MarginMSELoss as STMarginMSE
    from transformers import TrainerCallback

    queries, positives, negatives, margins = data
    config_kwargs = {} if attention_dropout is None else {"attention_probs_dropout_prob": attention_dropout}
    model = SentenceTransformer(resolve_model(DEFAULT_MODEL), device="cpu", config_kwargs=config_kwargs)
    model.max_seq_length = max_length
    n = (steps + 1) * batch_size
    dataset = Dataset.from_dict(
        {"query": queries[:n], "positive": positives[:n], "negative": negatives[:n], "label": margins[:n]}
    )
    bf16 = cpu_supports_bf16()
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *args, **kwargs):
            times.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        arguments = SentenceTransformerTrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch_size,
            max_steps=steps + 1,
            learning_rate=2e-5,
            bf16=bf16,
            use_cpu=True,
            report_to=[],
            save_strategy="no",
            logging_strategy="no",
            dataloader_drop_last=True,
            seed=0,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=arguments, train_dataset=dataset, loss=STMarginMSE(model), callbacks=[Clock()]
        )
        trainer.train()
    return steps * batch_size / (times[-1] - times[0]), "bf16 autocast" if bf16 else "fp32"


def compare(steps: int = 6, batch_size: int = 32, max_length: int = 256, dropout: float | None = None) -> dict:
    """Both trainers on the same triples in this process: triples per second of each and the ratios."""
    data = load_triples((steps + 1) * batch_size)
    peer, peer_precision = sentence_transformers_side(data, batch_size, steps, max_length)
    peer_no_attention_dropout, _ = sentence_transformers_side(data, batch_size, steps, max_length, 0.0)
    mine = ours(data, batch_size, steps, max_length, dropout)
    return {
        "steps": steps,
        "batch_size": batch_size,
        "max_length": max_length,
        "peer_precision": peer_precision,
        "peer_triples_per_s": peer,
        "peer_attention_dropout_0_triples_per_s": peer_no_attention_dropout,
        "ours_triples_per_s": mine,
        "ratio_as_shipped": mine / peer,
        "ratio_like_for_like": mine / peer_no_attention_dropout,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=None, help="ours only: override dropout (default: model's)")
    args = parser.parse_args()
    f = compare(args.steps, args.batch_size, args.max_length, args.dropout)
    print(f"batch size {args.batch_size}, max length {args.max_length}, {args.steps} timed steps each")
    print(
        f"SentenceTransformerTrainer + MarginMSELoss ({f['peer_precision']}, as shipped): "
        f"{f['peer_triples_per_s']:7.2f} triples/s"
    )
    like_for_like = f["peer_attention_dropout_0_triples_per_s"]
    print(f"  the same with attention dropout 0:                      {like_for_like:7.2f} triples/s")
    dropout = "model's" if args.dropout is None else args.dropout
    print(
        f"benchmark teacher-distillation loop (auto precision, hidden dropout {dropout}, attention dropout 0): "
        f"{f['ours_triples_per_s']:7.2f} triples/s"
    )
    print(
        f"ratio: {f['ratio_as_shipped']:.2f}x (against the Trainer with attention dropout 0 too: "
        f"{f['ratio_like_for_like']:.2f}x)"
    )


if __name__ == "__main__":
    main()
