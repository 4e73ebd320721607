"""Batch sampling: what the encoder learns from is chosen by how batches are composed.

- ``sampler=tas-balanced`` (Hofstätter et al., SIGIR 2021, arXiv 2104.06967): queries are clustered with k-means
  on the initial encoder's query embeddings; every batch comes from one cluster; within a cluster the triples
  are spread evenly over bins of the teacher's margin (pos - neg); loss Margin-MSE plus an in-batch Margin-MSE
  term weighted ``in_batch_weight``. TAS-B used 0.75 (``in_batch_neg_lambda: 0.75`` with the pairwise term at 1,
  in the dual-supervision workflow of the authors' matchmaker repository,
  documentation/distillation_workflow_dual-supervision.md).
- ``sampler=hard-negatives``: each triple's BM25-mined negative plus in-batch InfoNCE: cross-entropy over the
  positive, its hard negative and every other document of the batch, at ``temperature``.

The budget is the same prefix of the same triple order as every other regime. TAS-Balanced does not draw with
replacement from all queries as in the paper: it regroups the budgeted triples (each exactly once) into batches,
cluster by cluster in a seeded random order, with the last batch of a cluster possibly smaller, so the
examples consumed equal ceil(f x N) and no regime sees more or different data.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from benchmark.errors import UsageError
from benchmark.triples import Triple
from regimes.base import Parameter, Regime, TripleEmbeddings, register
from regimes.teacher_distillation import MarginMSELoss, scaled_teacher_scores, teacher_margins
from regimes.teacher_scale import parse_teacher_scale
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


TRIPLES_PER_CLUSTER_IN_BATCHES = 4  # auto: enough clusters that each holds about four batches of triples


def in_batch_info_nce(embeddings: TripleEmbeddings, temperature: float) -> torch.Tensor:
    """Cross-entropy of query i over [all positives, all negatives] of the batch, the target its own positive."""
    documents = torch.cat([embeddings.all_positives, embeddings.all_negatives])  # every process's documents
    logits = embeddings.similarity(embeddings.queries, documents) / temperature  # (local rows, 2B)
    targets = torch.arange(embeddings.queries.shape[0], device=logits.device) + embeddings.offset
    return F.cross_entropy(logits, targets)


def balanced_batches(
    triples: Sequence[Triple],
    cluster_of: dict[str, int],
    margin_bin: dict[Triple, int],
    batch_size: int,
    seed: int,
) -> list[list[Triple]]:
    """Every triple exactly once; each batch from one query cluster; bins drawn round-robin within a batch.

    Clusters are visited in a seeded random order and each is used up before the next; inside a cluster, each
    bin's triples are shuffled and a batch takes one triple from each non-empty bin in turn, so within a batch
    the counts of bins that still hold triples differ by at most one.
    """
    rng = random.Random(seed)
    by_cluster: dict[int, dict[int, list[Triple]]] = defaultdict(lambda: defaultdict(list))
    for triple in triples:
        by_cluster[cluster_of[triple.query_id]][margin_bin[triple]].append(triple)
    batches = []
    clusters = sorted(by_cluster)
    rng.shuffle(clusters)
    for cluster in clusters:
        bins = [by_cluster[cluster][b] for b in sorted(by_cluster[cluster])]
        for members in bins:
            rng.shuffle(members)
        turn = 0  # the round-robin carries on across batches, so no bin is favoured at each batch's start
        while any(bins):
            batch: list[Triple] = []
            while len(batch) < batch_size and any(bins):
                members = bins[turn % len(bins)]
                turn += 1
                if members:
                    batch.append(members.pop())
            batches.append(batch)
    rng.shuffle(batches)
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
            "tas-balanced: k of k-means over the queries (auto: ~4 batches of triples each)",
            parse_clusters,
        ),
        Parameter("margin_bins", 10, "tas-balanced: bins of the teacher margin balanced within a batch", positive_int),
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
        self.pair_scores: dict[PairKey, float] = {}
        self.scale = 1.0
        self.planned: list[list[Triple]] | None = None

    @property
    def tas_balanced(self) -> bool:
        return self.settings["sampler"] == "tas-balanced"

    # --- preparation: clustering and teacher scoring, charged to this regime ------------------------------
    def prepare(self, context) -> None:
        if not self.tas_balanced:
            self.notes["negatives"] = "the shared triples' negatives (BM25-mined, or the dataset's docpairs)"
            return
        self.teacher.load(context.encoder_config)
        cluster_of = self.cluster_queries(context)
        pairs = {(t.query_id, d) for t in context.triples for d in (t.positive_id, t.negative_id)}
        scores, self.scale = scaled_teacher_scores(self.teacher, sorted(pairs), context, self.settings["teacher_scale"])
        unscored = [t for t in context.triples if not self._scored(t, scores)]
        if unscored:
            raise UsageError(
                f"batch-sampling: {len(unscored)} budget triples have no teacher score; tas-balanced needs every one "
                "(use a teacher that scores any pair)"
            )
        margins = {
            t: scores[(t.query_id, t.positive_id)] - scores[(t.query_id, t.negative_id)] for t in context.triples
        }
        bin_of = self.margin_bins(margins)
        self.planned = balanced_batches(context.triples, cluster_of, bin_of, context.batch_size, context.seed)
        if self.settings["in_batch_weight"] > 0:
            # a pair's score depends on the pair alone, so the in-batch pairs are simply scored too
            in_batch = set()
            for batch in self.planned:
                docs = [t.positive_id for t in batch] + [t.negative_id for t in batch]
                in_batch.update((t.query_id, d) for t in batch for d in docs)
            scores = {**scores, **teacher_scores(self.teacher, sorted(in_batch - set(scores)), context)}
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
                wanted = max(1, round(len(context.triples) / (TRIPLES_PER_CLUSTER_IN_BATCHES * context.batch_size)))
            k = min(wanted, len(query_ids))
            labels = KMeans(n_clusters=k, n_init=3, random_state=context.seed).fit_predict(vectors)
            record.count = len(query_ids)
        return dict(zip(query_ids, (int(label) for label in labels), strict=True))

    def margin_bins(self, margins: dict[Triple, float]) -> dict[Triple, int]:
        """Equal-width bins over the range of the teacher's margins, as TAS-Balanced does."""
        values = np.array(list(margins.values()))
        edges = np.linspace(values.min(), values.max(), self.settings["margin_bins"] + 1)[1:-1]
        return {t: int(np.searchsorted(edges, m, side="right")) for t, m in margins.items()}

    @staticmethod
    def _scored(triple: Triple, scores: dict[PairKey, float]) -> bool:
        return (triple.query_id, triple.positive_id) in scores and (triple.query_id, triple.negative_id) in scores

    # --- training -----------------------------------------------------------------------------------------
    def batches(self, triples: Sequence[Triple], batch_size: int, seed: int) -> Iterator[Sequence[Triple]]:
        if not self.tas_balanced:
            yield from super().batches(triples, batch_size, seed)
            return
        if self.planned is None:
            raise RuntimeError("batch-sampling: prepare() must run before batches()")
        order = list(self.planned)
        random.Random(seed).shuffle(order)  # a new batch order each epoch; the batches themselves are fixed
        yield from order

    def loss(self, embeddings: TripleEmbeddings, batch: Sequence[Triple]) -> torch.Tensor:
        if not self.tas_balanced:
            return in_batch_info_nce(embeddings, self.settings["temperature"])
        margins, in_batch = teacher_margins(
            self.pair_scores,
            batch,
            embeddings.queries.device,
            self.settings["in_batch_weight"] > 0,
            embeddings.rows,
            self.scale,
        )
        return self.criterion(embeddings, margins, in_batch)

    def evaluation_systems(self, env) -> dict:
        if self.teacher is None:
            return {}
        return {f"teacher:{self.teacher.spec}": self.teacher.system(env)}
