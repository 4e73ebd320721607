"""Batch sampling: what the encoder learns from is chosen by how batches are composed.

- ``sampler=tas-balanced`` (Hofstätter et al., SIGIR 2021, arXiv 2104.06967), as the authors' matchmaker repository
  implements it (matchmaker/dataloaders/tas_balanced_training_loader.py, config/train/modes/tas_balanced.yaml):
  the budget's queries are clustered with k-means on the initial encoder's query embeddings; each query's pairs
  are put in ``margin_bins`` (10) equal-width bins of the teacher's margin pos - neg over that query's own margin
  range; a batch is drawn with replacement: a cluster uniformly at random (one cluster a batch,
  ``dynamic_clusters_per_batch: 1``), distinct queries from it, and for each query a non-empty bin uniformly,
  then a pair from that bin uniformly. ``clusters=auto`` applies the paper's ratio, 2K clusters for the ~400K
  MS MARCO training queries (200 queries a cluster), to the budget's queries, but never so many clusters that
  they hold fewer than a batch of queries on average. Loss Margin-MSE plus an in-batch Margin-MSE term weighted
  ``in_batch_weight``: TAS-B used 0.75 (``in_batch_neg_lambda: 0.75`` with the pairwise term at 1, in
  documentation/distillation_workflow_dual-supervision.md of the same repository).
- ``sampler=hard-negatives``: each triple's BM25-mined negative plus in-batch InfoNCE: cross-entropy over the
  positive, its hard negative and every other document of the batch, at ``temperature``; an in-batch copy of a
  row's positive (or another positive of the same query) is not counted as its negative.

Budget: TAS-Balanced samples from the budget's pool (the same prefix of the same triple order as every other
regime) and consumes exactly its size, ceil(f x N) examples: ceil(budget / batch size) batches, the last one
smaller. Differences from matchmaker: a query with a single pair is kept (one bin; matchmaker skips it), and a
cluster with fewer queries than a batch repeats its queries (each a fresh bin and pair draw) instead of topping
the batch up from another cluster, so every batch stays within one cluster. The batches are drawn once, in
``prepare`` (the in-batch term needs teacher scores for every pair of them); later epochs reuse them in a new
seeded order.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from benchmark.common.errors import UsageError
from benchmark.data.pairs import Pairs, PairScores
from benchmark.data.triples import Triple
from regimes.base import Parameter, Regime, TripleEmbeddings, register
from regimes.teacher_distillation import MarginMSELoss, margin_mse_on_teacher, scaled_teacher_scores
from regimes.teacher_scale import parse_teacher_scale, teacher_margin_values
from regimes.teachers import DEFAULT_TEACHER, PairKey, Teacher, has_score_file, parse_teacher, teacher_scores

CITATION = """@inproceedings{hofstaetter2021tasb,
  title     = {Efficiently Teaching an Effective Dense Retriever with Balanced Topic Aware Sampling},
  author    = {Hofst{\\"a}tter, Sebastian and Lin, Sheng-Chieh and Yang, Jheng-Hong and Lin, Jimmy and
               Hanbury, Allan},
  booktitle = {Proceedings of SIGIR 2021},
  year      = {2021},
  note      = {arXiv:2104.06967}
}"""


def parse_sampler(text: str) -> str:
    if text not in ("tas-balanced", "hard-negatives"):
        raise ValueError("expected tas-balanced or hard-negatives")
    return text


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected a whole number >= 1")
    return value


def parse_clusters(text: str) -> int | str:
    """``auto`` or a whole number >= 1."""
    return "auto" if text == "auto" else positive_int(text)


# TAS-B clustered the ~400K MS MARCO training queries into 2K clusters: about 200 queries a cluster
PAPER_QUERIES_PER_CLUSTER = 400_000 // 2_000


def auto_clusters(queries: int, batch_size: int) -> int:
    """The paper's queries-per-cluster ratio applied to the budget's queries, with a floor of one batch of
    queries per cluster on average (a batch takes distinct queries from one cluster)."""
    return max(1, min(round(queries / PAPER_QUERIES_PER_CLUSTER), queries // batch_size))


def in_batch_info_nce(
    embeddings: TripleEmbeddings, temperature: float, batch: Sequence[Triple] | None = None
) -> torch.Tensor:
    """Cross-entropy of query i over [all positives, all negatives] of the batch, the target its own positive.

    With ``batch`` (the whole batch's triples) a column holding row i's positive document elsewhere in the
    batch, or another positive of the same query, is masked out: it is relevant, not a negative of row i.
    """
    documents = torch.cat([embeddings.all_positives, embeddings.all_negatives])  # every process's documents
    logits = embeddings.similarity(embeddings.queries, documents) / temperature  # (local rows, 2B)
    targets = torch.arange(embeddings.queries.shape[0], device=logits.device) + embeddings.offset
    if batch is not None:
        logits = logits.masked_fill(relevant_elsewhere(batch, embeddings.rows).to(logits.device), float("-inf"))
    return F.cross_entropy(logits, targets)


def relevant_elsewhere(batch: Sequence[Triple], rows: slice) -> torch.Tensor:
    """(local rows, 2B) mask over [positives, negatives]: every column, other than row i's own positive, whose
    document is a positive of row i's query somewhere in the batch (its own positive again, or another one)."""
    doc_ids = [t.positive_id for t in batch] + [t.negative_id for t in batch]
    positives_of: dict[str, set[str]] = defaultdict(set)
    for triple in batch:
        positives_of[triple.query_id].add(triple.positive_id)
    local = range(len(batch))[rows]
    mask = torch.zeros(len(local), len(doc_ids), dtype=torch.bool)
    for r, i in enumerate(local):
        relevant = positives_of[batch[i].query_id]
        for c, doc_id in enumerate(doc_ids):
            mask[r, c] = c != i and doc_id in relevant
    return mask


def balanced_batches(
    triples: Sequence[Triple],
    cluster_of: dict[str, int],
    margin_bin: dict[Triple, int],
    batch_size: int,
    seed: int,
) -> list[list[Triple]]:
    """TAS-Balanced draws, with replacement, of exactly ``len(triples)`` examples from the pool ``triples``.

    ceil(len / batch_size) batches, the last one smaller. Each batch: a cluster uniformly at random; distinct
    queries of it uniformly (all of them, repeated in shuffled rounds, when the cluster has fewer queries than
    the batch); per query, one of its non-empty margin bins uniformly, then one of that bin's triples uniformly.
    Seeded and deterministic.
    """
    rng = random.Random(seed)
    pool: dict[str, dict[int, list[Triple]]] = defaultdict(lambda: defaultdict(list))
    for triple in triples:
        pool[triple.query_id][margin_bin[triple]].append(triple)
    by_cluster: dict[int, list[str]] = defaultdict(list)
    for query_id in sorted(pool):
        by_cluster[cluster_of[query_id]].append(query_id)
    clusters = sorted(by_cluster)
    bins_of = {q: [pool[q][b] for b in sorted(pool[q])] for q in pool}
    batches = []
    for start in range(0, len(triples), batch_size):
        size = min(batch_size, len(triples) - start)
        members = by_cluster[rng.choice(clusters)]
        queries: list[str] = []
        while len(queries) < size:
            queries += rng.sample(members, min(size - len(queries), len(members)))
        batches.append([rng.choice(rng.choice(bins_of[q])) for q in queries])
    return batches


@register
class BatchSampling(Regime):
    """TAS-Balanced batches with Margin-MSE (+ in-batch), or BM25 hard negatives with in-batch InfoNCE."""

    name = "batch-sampling"
    description = "TAS-Balanced (Hofstätter et al., SIGIR 2021) or BM25 hard negatives with in-batch InfoNCE"
    citation = CITATION
    parameters = (
        Parameter("sampler", "tas-balanced", "tas-balanced | hard-negatives", parse_sampler),
        Parameter(
            "clusters",
            "auto",
            "tas-balanced: k of k-means over the queries (auto: TAS-B's 200 queries a cluster, >= a batch)",
            parse_clusters,
        ),
        Parameter("margin_bins", 10, "tas-balanced: bins of each query's teacher margin", positive_int),
        Parameter("teacher", DEFAULT_TEACHER, "tas-balanced: the teacher, as in teacher-distillation"),
        Parameter("in_batch_weight", 0.75, "tas-balanced: weight of the in-batch Margin-MSE term (TAS-B: 0.75)", float),
        Parameter(
            "teacher_scale",
            "auto",
            "tas-balanced: factor on the teacher's margins, as in teacher-distillation",
            parse_teacher_scale,
        ),
        Parameter("temperature", 0.05, "hard-negatives: InfoNCE temperature", float),
    )

    def validate(self) -> None:
        settings = self.settings
        if settings["temperature"] <= 0:
            raise UsageError("regime batch-sampling: temperature must be > 0")
        if settings["in_batch_weight"] < 0:
            raise UsageError("regime batch-sampling: in_batch_weight must be >= 0")
        self.teacher: Teacher | None = None
        if settings["sampler"] == "tas-balanced":
            self.teacher = parse_teacher(settings["teacher"])
            if settings["in_batch_weight"] > 0 and has_score_file(self.teacher):
                raise UsageError(
                    "regime batch-sampling: a score file has no scores for in-batch pairs; set in_batch_weight=0"
                )
        self.criterion = MarginMSELoss(settings["in_batch_weight"])
        self.pair_scores: Mapping[PairKey, float] = PairScores.empty()
        self.scale = 1.0
        self.planned: list[list[Triple]] | None = None
        self.loaded = False

    def check(self, encoder_config) -> None:
        if self.teacher is not None:
            self.teacher.load(encoder_config)
        self.loaded = True

    @property
    def tas_balanced(self) -> bool:
        return self.settings["sampler"] == "tas-balanced"

    # --- preparation: clustering and teacher scoring, charged to this regime ------------------------------
    def prepare(self, context) -> None:
        if not self.tas_balanced:
            self.notes["negatives"] = "the shared triples' negatives (BM25-mined, or the dataset's docpairs)"
            return
        if not self.loaded:
            self.check(context.encoder_config)
        cluster_of = self.cluster_queries(context)
        pairs = Pairs.of_triples(context.triples)
        scores, self.scale = scaled_teacher_scores(self.teacher, pairs, context, self.settings["teacher_scale"])
        values = teacher_margin_values(scores, context.triples)
        unscored = int(np.isnan(values).sum())
        if unscored:
            raise UsageError(
                f"batch-sampling: {unscored} budget triples have no teacher score; tas-balanced needs every one "
                "(use a teacher that scores any pair)"
            )
        margins = dict(zip(context.triples, values.tolist(), strict=True))
        bin_of = self.margin_bins(margins)
        self.planned = balanced_batches(context.triples, cluster_of, bin_of, context.batch_size, context.seed)
        self.notes["distinct_triples_drawn"] = len({t for batch in self.planned for t in batch})
        if self.settings["in_batch_weight"] > 0:
            # a pair's score depends on the pair alone, so the in-batch pairs are simply scored too
            in_batch = set()
            for batch in self.planned:
                docs = [t.positive_id for t in batch] + [t.negative_id for t in batch]
                in_batch.update((t.query_id, d) for t in batch for d in docs)
            extra = Pairs.from_keys(in_batch).difference(scores.pairs)
            scores = scores.merged(teacher_scores(self.teacher, extra, context))
        self.pair_scores = scores
        self.notes.update(
            teacher=self.teacher.spec, teacher_scale=self.scale, clusters_used=len(set(cluster_of.values()))
        )

    def cluster_queries(self, context) -> dict[str, int]:
        """k-means (scikit-learn) over the initial encoder's embeddings of the budget's queries."""
        from sklearn.cluster import KMeans

        with context.meter.phase("cluster", charged_to=context.label, cell=context.cell) as record:
            query_ids = sorted({t.query_id for t in context.triples})
            vectors = context.encoder.encode([context.collection.queries[q] for q in query_ids], "query")
            wanted = self.settings["clusters"]
            if wanted == "auto":
                wanted = auto_clusters(len(query_ids), context.batch_size)
            k = min(wanted, len(query_ids))
            labels = KMeans(n_clusters=k, n_init=3, random_state=context.seed).fit_predict(vectors)
            record.count = len(query_ids)
        return dict(zip(query_ids, (int(label) for label in labels), strict=True))

    def margin_bins(self, margins: dict[Triple, float]) -> dict[Triple, int]:
        """Per query, ``margin_bins`` equal-width bins over that query's range of teacher margins (TAS-B's
        per-query bins); a query whose margins are all equal has one bin."""
        by_query: dict[str, list[Triple]] = defaultdict(list)
        for triple in margins:
            by_query[triple.query_id].append(triple)
        bins = {}
        for members in by_query.values():
            values = np.array([margins[t] for t in members])
            edges = np.linspace(values.min(), values.max(), self.settings["margin_bins"] + 1)[1:-1]
            for triple, value in zip(members, values, strict=True):
                bins[triple] = int(np.searchsorted(edges, value, side="right")) if values.max() > values.min() else 0
        return bins

    # --- training -----------------------------------------------------------------------------------------
    def batches(self, triples: Sequence[Triple], batch_size: int, seed: int) -> Iterator[Sequence[Triple]]:
        if not self.tas_balanced:
            yield from super().batches(triples, batch_size, seed)
            return
        if self.planned is None:
            raise RuntimeError("batch-sampling: prepare() must run before batches()")
        # the draw of prepare (its in-batch pairs are the ones scored), in a new order each epoch
        order = list(self.planned)
        random.Random(seed).shuffle(order)
        yield from order

    def loss(self, embeddings: TripleEmbeddings, batch: Sequence[Triple]) -> torch.Tensor:
        if not self.tas_balanced:
            return in_batch_info_nce(embeddings, self.settings["temperature"], batch)
        return margin_mse_on_teacher(
            self.criterion, self.pair_scores, self.scale, self.settings["in_batch_weight"], embeddings, batch
        )

    def evaluation_systems(self, env) -> dict:
        if self.teacher is None:
            return {}
        return {f"teacher:{self.teacher.spec}": self.teacher.system(env)}
