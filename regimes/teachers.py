"""Teachers for distillation: each scores (query, document) pairs; chosen with ``teacher=<kind>:<argument>``.

- ``cross-encoder:<hf id or path>``: an AutoModelForSequenceClassification over (query, document).
- ``bi-encoder:<hf id or path>``: a frozen bi-encoder's similarity (same pooling rules as the student).
- ``scores:<path>``: precomputed scores, one triple a line: score_pos, score_neg, qid, pid_pos, pid_neg
  (tab-separated, the layout of Hofstätter et al.'s MS MARCO BERT_CAT ensemble files).
- ``bm25``: pyterrier-pisa BM25 over the training corpus.
- ``ensemble:<a>+<b>+...``: the mean of the members' scores, each standardised by one fixed affine map (mean 0,
  standard deviation 1 over every pair of the full training triples), so members on different scales weigh the
  same.

A pair's score depends on that pair alone: never on the budget, the fraction, the regime or what else is scored in
the same call (the old per-query min-max over the scored pairs turned every two-document query of a small budget
into margins of exactly +-1). So on several processes a model teacher's pairs are shared out: each process scores a
contiguous share (:func:`score_shared`) and the main process writes the one score cache. A teacher is also a
retrieval system where it can be one, so its ceiling is a row of the results table.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd
import pyterrier as pt
import torch

from benchmark.common.errors import UsageError
from benchmark.data.pairs import PairKey, Pairs, PairScores
from benchmark.training.distributed import ONE_PROCESS, Processes, Task

if TYPE_CHECKING:
    from benchmark.data.collections import Collection
    from benchmark.data.triples import Triple
    from benchmark.encoder import EncoderConfig

DEFAULT_TEACHER = "ensemble:bm25+bi-encoder:sentence-transformers/all-MiniLM-L6-v2"
BM25_DEPTH = 1000
SCORING_CHUNK = 1 << 20  # pairs scored per call, so a teacher's own per-pair objects stay bounded at any size


@dataclass
class TeacherInputs:
    """What a teacher needs to score: texts, the BM25 index's cache and the run's encoder settings."""

    collection: Collection
    cache_dir: Path
    encoder_config: EncoderConfig


class Teacher(ABC):
    """Scores (query, document) pairs; higher means more relevant."""

    kind: ClassVar[str]
    shardable: ClassVar[bool] = False  # a model worth sharing over processes (not BM25's index, not a file)

    def __init__(self, argument: str) -> None:
        self.argument = argument

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.argument}" if self.argument else self.kind

    def load(self, encoder_config: EncoderConfig) -> None:
        """Load models or check files now, so a missing one fails before any training."""

    def fingerprint(self, encoder_config: EncoderConfig) -> str:
        """What the scores depend on besides the pairs: the spec, the lengths and precision, and the content of
        local files (a score file or a model folder edited in place must not reuse old scores)."""
        parts = [
            self.spec,
            str(encoder_config.max_query_length),
            str(encoder_config.max_doc_length),
            encoder_config.precision,
        ]
        path = Path(self.argument) if self.argument else None
        if path is not None and path.exists():
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            digest = hashlib.sha1()
            for file in files:
                stat = file.stat()
                digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
                if file.is_file() and stat.st_size < 64 * 2**20:
                    digest.update(file.read_bytes())
            parts.append(digest.hexdigest())
        return "|".join(parts)

    @abstractmethod
    def score_pairs(self, pairs: Sequence[PairKey], inputs: TeacherInputs) -> Mapping[PairKey, float]:
        """Scores of the pairs it can score (all of them, except for a score file)."""

    def system(self, env: Any) -> pt.Transformer | None:
        """The teacher as a PyTerrier retrieval system on an evaluation set, or None where it cannot be one."""
        return None


def _texts(pairs: Sequence[PairKey], inputs: TeacherInputs) -> tuple[list[str], list[str]]:
    queries = [inputs.collection.queries[q] for q, _ in pairs]
    docs = inputs.collection.document_texts([d for _, d in pairs])
    return queries, docs


class CrossEncoderTeacher(Teacher):
    """A cross-encoder (AutoModelForSequenceClassification): the relevance logit of each (query, document)."""

    kind = "cross-encoder"
    shardable = True
    batch_size = 32

    def load(self, encoder_config: EncoderConfig) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from benchmark.encoder import resolve_device, resolve_precision

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.argument)
            self.model = AutoModelForSequenceClassification.from_pretrained(self.argument)
        except (OSError, ValueError) as error:
            raise UsageError(
                f"teacher cross-encoder {self.argument!r} could not be loaded ({str(error).splitlines()[0][:120]}); "
                "pass a local folder or a cached Hugging Face id"
            ) from None
        self.device = resolve_device(encoder_config.device)
        self.precision = resolve_precision(encoder_config.precision, self.device)
        self.max_length = encoder_config.max_query_length + encoder_config.max_doc_length
        self.model.to(self.device).eval()

    @torch.inference_mode()
    def score_texts(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        scores = []
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        for start in range(0, len(queries), self.batch_size):
            batch = self.tokenizer(
                list(queries[start : start + self.batch_size]),
                list(docs[start : start + self.batch_size]),
                padding=True,
                truncation="only_second",
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = self.model(**batch).logits.float()
            # one logit: its value; several labels: the log-odds of the last ("relevant") label
            column = logits[:, 0] if logits.shape[1] == 1 else logits[:, -1] - torch.logsumexp(logits[:, :-1], 1)
            scores.append(column.cpu().numpy())
        return np.concatenate(scores) if scores else np.zeros(0)

    def score_pairs(self, pairs, inputs):
        queries, docs = _texts(pairs, inputs)
        return dict(zip(pairs, map(float, self.score_texts(queries, docs)), strict=True))

    def system(self, env):
        """BM25's top 100, re-ranked by the cross-encoder."""

        def rerank(frame: pd.DataFrame) -> pd.DataFrame:
            texts = env.collection.document_texts(list(frame["docno"]))
            return frame.assign(score=self.score_texts(list(frame["query"]), texts))

        return env.bm25(100) >> pt.apply.by_query(rerank, add_ranks=True)


class BiEncoderTeacher(Teacher):
    """A frozen bi-encoder: the similarity of its query and document embeddings."""

    kind = "bi-encoder"
    shardable = True

    def load(self, encoder_config: EncoderConfig) -> None:
        from dataclasses import replace

        from benchmark.encoder import BiEncoder

        self.config = replace(encoder_config, model=self.argument, pooling="auto")
        self.encoder = BiEncoder(self.config)
        self._vectors: dict[tuple[str, str], np.ndarray] = {}  # (kind, id) -> embedding; the teacher is frozen

    def embeddings(self, kind: Literal["query", "doc"], ids: Sequence[str], inputs: TeacherInputs) -> np.ndarray:
        """Each query and document is encoded once per run, however many pairs and calls it is in."""
        missing = [i for i in dict.fromkeys(ids) if (kind, i) not in self._vectors]
        if missing:
            if kind == "query":
                texts = [inputs.collection.queries[i] for i in missing]
            else:
                texts = inputs.collection.document_texts(missing)
            for i, vector in zip(missing, self.encoder.encode(texts, kind), strict=True):
                self._vectors[(kind, i)] = vector
        return np.stack([self._vectors[(kind, i)] for i in ids])

    def score_pairs(self, pairs, inputs):
        query_ids = sorted({q for q, _ in pairs})
        doc_ids = sorted({d for _, d in pairs})
        query_vectors = self.embeddings("query", query_ids, inputs)
        doc_vectors = self.embeddings("doc", doc_ids, inputs)
        query_row = {q: i for i, q in enumerate(query_ids)}
        doc_row = {d: i for i, d in enumerate(doc_ids)}
        return {(q, d): float(query_vectors[query_row[q]] @ doc_vectors[doc_row[d]]) for q, d in pairs}

    def system(self, env):
        return env.dense(self.encoder.for_inference(), f"teacher {self.spec}", reusable=True)  # as every encoder


class BM25Teacher(Teacher):
    """BM25 scores. A document BM25 did not return scores 0 when fewer than 1000 came back (it shares no term
    with the query); when 1000 came back it gets the query's lowest retrieved score, an upper bound."""

    kind = "bm25"

    def score_pairs(self, pairs, inputs):
        from benchmark.data.bm25 import BM25Index

        by_query: dict[str, list[str]] = defaultdict(list)
        for query_id, doc_id in pairs:
            by_query[query_id].append(doc_id)
        queries = {q: inputs.collection.queries[q] for q in by_query}
        scored = BM25Index(inputs.collection, inputs.cache_dir).scores(queries, BM25_DEPTH)
        result = {}
        for query_id, doc_ids in by_query.items():
            ranking = scored.get(query_id, {})
            floor = min(ranking.values()) if len(ranking) >= BM25_DEPTH else 0.0
            for doc_id in doc_ids:
                result[(query_id, doc_id)] = ranking.get(doc_id, floor)
        return result

    def system(self, env):
        return env.bm25(BM25_DEPTH)


class ScoresFileTeacher(Teacher):
    """Precomputed scores per triple (score_pos, score_neg, qid, pid_pos, pid_neg), matched by ids."""

    kind = "scores"

    def load(self, encoder_config: EncoderConfig) -> None:
        path = Path(self.argument)
        if not path.is_file():
            raise UsageError(f"teacher score file {path} does not exist; pass scores:<path to the file>")
        with open(path, newline="") as stream:
            self.pairs = PairScores.from_items(self._items(path, stream))  # a pair given twice: its last score

    @staticmethod
    def _items(path: Path, stream) -> Iterator[tuple[PairKey, float]]:
        for number, row in enumerate(csv.reader(stream, delimiter="\t"), start=1):
            if not row:
                continue
            try:
                if len(row) != 5:
                    raise ValueError(f"{len(row)} columns")
                positive, negative = float(row[0]), float(row[1])
                if not (math.isfinite(positive) and math.isfinite(negative)):
                    raise ValueError("a score is not a finite number")
            except ValueError as error:
                raise UsageError(
                    f"{path}, line {number}: not in the layout score_pos<TAB>score_neg<TAB>qid<TAB>pid_pos<TAB>"
                    f"pid_neg ({error}); fix the file"
                ) from None
            query_id, positive_id, negative_id = row[2], row[3], row[4]
            yield (query_id, positive_id), positive
            yield (query_id, negative_id), negative

    def score_pairs(self, pairs, inputs):
        return self.pairs.on(Pairs.from_keys(pairs))


@dataclass(frozen=True)
class Standardisation:
    """One member's fixed affine map, fitted once on every pair of the full training triples."""

    mean: float
    std: float

    @classmethod
    def fit(cls, scores: Sequence[float] | np.ndarray) -> Standardisation:
        values = np.asarray(scores, dtype=np.float64)
        if values.size == 0:
            raise UsageError("an ensemble member scores none of the training triples' pairs; check its ids")
        return cls(float(values.mean()), float(values.std()))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return (scores - self.mean) / self.std if self.std > 0 else np.zeros_like(scores)


class EnsembleTeacher(Teacher):
    """The mean of its members' standardised scores (:class:`Standardisation`, fitted with :meth:`fit`).

    The maps are fitted on the full training triples, never on the pairs being scored, so a pair scores the same
    in every cell and call; :func:`teacher_scores` fits them before it fuses.
    """

    kind = "ensemble"

    def __init__(self, argument: str) -> None:
        super().__init__(argument)
        self.members = [parse_teacher(part) for part in argument.split("+") if part]
        if len(self.members) < 2:
            raise UsageError(f"teacher ensemble:{argument} needs two or more members joined by '+'")
        self.maps: list[Standardisation] | None = None

    def load(self, encoder_config):
        for member in self.members:
            member.load(encoder_config)

    def fingerprint(self, encoder_config):
        return "+".join(member.fingerprint(encoder_config) for member in self.members)

    def fit(self, reference_scores: Sequence[Mapping[PairKey, float]]) -> None:
        """Fit each member's map on its scores of the reference pairs (every pair of the full training triples)."""
        self.maps = [Standardisation.fit(PairScores.of(scores).scores) for scores in reference_scores]

    def fuse(self, member_scores: Sequence[Mapping[PairKey, float]]) -> PairScores:
        """The mean of the standardised member scores, on the pairs every member scored."""
        if self.maps is None:
            raise RuntimeError("fit() the ensemble on the training pairs before fusing its members' scores")
        members = [PairScores.of(scores) for scores in member_scores]
        common = members[0].pairs
        for member in members[1:]:
            common = common.take(np.flatnonzero(member.pairs.positions_of(common) >= 0))
        standardised = [m(member.on(common).scores) for m, member in zip(self.maps, members, strict=True)]
        return PairScores(common, np.mean(np.stack(standardised), axis=0) if len(common) else np.zeros(0))

    def score_pairs(self, pairs, inputs):
        return self.fuse([member.score_pairs(pairs, inputs) for member in self.members])

    def system(self, env):
        """CombSUM of the members' rankings, each min-max normalised per query first."""
        systems = [member.system(env) for member in self.members]
        if any(system is None for system in systems):
            return None
        normalise = pt.apply.by_query(_min_max_frame, add_ranks=True)
        fused = systems[0] >> normalise
        for system in systems[1:]:
            fused = fused + (system >> normalise)
        return fused


def _min_max_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One query's ranking with scores mapped to [0, 1] (pyterrier-alpha's PerQueryMaxMinScore, which fails to
    import with this pyterrier-alpha release)."""
    low, high = frame["score"].min(), frame["score"].max()
    span = high - low
    return frame.assign(score=(frame["score"] - low) / span if span > 0 else 0.5)


def has_score_file(teacher: Teacher) -> bool:
    """A score file, alone or in an ensemble, cannot score pairs outside its lines (e.g. in-batch pairs)."""
    if isinstance(teacher, ScoresFileTeacher):
        return True
    return any(has_score_file(member) for member in getattr(teacher, "members", []))


TEACHER_KINDS: dict[str, type[Teacher]] = {
    cls.kind: cls for cls in (CrossEncoderTeacher, BiEncoderTeacher, BM25Teacher, ScoresFileTeacher, EnsembleTeacher)
}


def parse_teacher(spec: str) -> Teacher:
    """``kind:argument`` (or ``bm25``) -> a Teacher, or a UsageError naming the known kinds."""
    kind, _, argument = spec.strip().partition(":")
    if kind not in TEACHER_KINDS:
        raise UsageError(f"unknown teacher kind {kind!r} in {spec!r}; use one of {', '.join(TEACHER_KINDS)}")
    if kind != "bm25" and not argument:
        raise UsageError(f"teacher {kind} needs an argument: {kind}:<model id, path or members>")
    if kind == "bm25" and argument:
        raise UsageError(f"teacher bm25 takes no argument, got {spec!r}")
    return TEACHER_KINDS[kind](argument)


def training_pairs(triples: Sequence[Triple]) -> Pairs:
    """Every (query, positive) and (query, negative) pair of the triples, sorted."""
    return Pairs.of_triples(triples)


def teacher_scores(teacher: Teacher, pairs: Sequence[PairKey], context: Any, calibrate: bool = False) -> PairScores:
    """Scores of ``pairs`` (those the teacher can score), each a function of its pair alone.

    An ensemble (and, with ``calibrate``, any teacher: ``teacher_scale=auto`` needs them) also scores every pair of
    ``context.training_triples`` in the phase ``teacher-calibration``, charged to the regime like the rest; the
    answer then covers those pairs too. Each member is scored and cached on its own, so a reference scored once
    is replayed, with its measured cost, in every cell and fraction.
    """
    ensemble = isinstance(teacher, EnsembleTeacher)
    members = teacher.members if ensemble else [teacher]
    fitting = ensemble and teacher.maps is None  # fitted once per teacher object; later calls score only pairs
    wanted = Pairs.from_keys(pairs)
    reference = training_pairs(context.training_triples) if calibrate or fitting else Pairs.from_keys([])
    if fitting and not reference:
        raise RuntimeError("an ensemble teacher needs the context's training_triples to fit its members' maps")
    extra = wanted.difference(reference)
    per_member, references = [], []
    for member in members:
        scores = cached_teacher_scores(member, reference, context, "teacher-calibration") if reference else None
        references.append(scores)
        if extra:
            more = cached_teacher_scores(member, extra, context)
            scores = more if scores is None else scores.merged(more)
        per_member.append(scores if scores is not None else PairScores.empty())
    if not ensemble:
        return per_member[0]
    if fitting:
        teacher.fit(references)
    return teacher.fuse(per_member)


def cached_teacher_scores(
    teacher: Teacher, pairs: Sequence[PairKey], context: Any, phase: str = "teacher-scoring"
) -> PairScores:
    """Score pairs in ``phase`` charged to the regime, or reuse an earlier run's scores.

    The cache (the scores as arrays, beside the phase's measured cost) is keyed by the teacher's fingerprint, the
    dataset and the pairs; a reused entry is charged the measured cost of the original scoring, marked as reused.
    The pairs are scored ``SCORING_CHUNK`` at a time, so only the arrays grow with their number.
    """
    from benchmark.common.files import read_json, write_json
    from benchmark.common.progress import say

    pairs = Pairs.from_keys(pairs)
    fingerprint = json.dumps([teacher.fingerprint(context.encoder_config), context.collection.name])
    key = hashlib.sha1(f"{fingerprint}{pairs.digest()}".encode()).hexdigest()[:16]
    folder = context.cache_dir / "teacher-scores"
    cache, cost = folder / f"{key}.npz", folder / f"{key}.json"
    if cache.exists() and cost.exists():
        cached = read_json(cost)
        context.meter.replay({**cached["phase"], "phase": phase}, charged_to=context.label, cell=context.cell)
        return PairScores.load(cache)
    with context.meter.phase(phase, charged_to=context.label, cell=context.cell) as record:
        say(f"Scoring {len(pairs)} (query, document) pairs with teacher {teacher.spec}")
        inputs = TeacherInputs(context.collection, context.cache_dir, context.encoder_config)
        processes = getattr(context, "processes", None)
        parts = [
            PairScores.of(score_shared(teacher, pairs[start : start + SCORING_CHUNK], inputs, processes))
            for start in range(0, len(pairs), SCORING_CHUNK)
        ]
        scores = _joined(parts)
        record.count = len(pairs)
    scores.save(cache)
    write_json(cost, {"teacher": teacher.spec, "phase": record.row(), "pairs": len(pairs), "scored": len(scores)})
    return scores


def _joined(parts: Sequence[PairScores]) -> PairScores:
    """Scores of consecutive chunks of one sorted Pairs, as one PairScores."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return PairScores.empty()
    return PairScores.from_items(item for part in parts for item in part.items())


@dataclass
class PairTexts:
    """One process's share of the pairs with their texts: what a teacher reads of a collection to score them."""

    name: str
    pairs: list[PairKey]
    queries: dict[str, str]
    documents: dict[str, str]

    @classmethod
    def of(cls, pairs: list[PairKey], collection: Collection) -> PairTexts:
        doc_ids = sorted({d for _, d in pairs})
        queries = {q: collection.queries[q] for q, _ in pairs}
        return cls(collection.name, pairs, queries, dict(zip(doc_ids, collection.document_texts(doc_ids), strict=True)))

    def document_texts(self, doc_ids: list[str]) -> list[str]:
        return [self.documents[d] for d in doc_ids]


def score_shared(
    teacher: Teacher, pairs: Sequence[PairKey], inputs: TeacherInputs, processes: Processes | None = None
) -> dict[PairKey, float]:
    """``teacher.score_pairs``; on several processes, a model teacher's pairs in contiguous shares, one a process,
    gathered here (on the main process) in the pairs' order. A score depends on its pair alone, so only the
    batching changes (within floating-point noise)."""
    processes = processes or ONE_PROCESS
    if not (processes.distributed and teacher.shardable):
        return teacher.score_pairs(pairs, inputs)
    pairs = list(pairs)
    rows = [Processes(rank, processes.world_size).rows(len(pairs)) for rank in range(processes.world_size)]
    parts = [PairTexts.of(pairs[share], inputs.collection) for share in rows]
    processes.lead(ScoreShare(teacher.spec, inputs.cache_dir, inputs.encoder_config))
    mine = processes.scatter(parts)
    found = processes.gather(_score_texts(teacher, mine, inputs.cache_dir, inputs.encoder_config))
    return {pair: score for part in found for pair, score in part.items()}


def _score_texts(teacher: Teacher, share: PairTexts, cache_dir: Path, encoder_config: Any) -> dict[PairKey, float]:
    if not share.pairs:
        return {}
    return teacher.score_pairs(share.pairs, TeacherInputs(share, cache_dir, encoder_config))  # type: ignore[arg-type]


_SERVING: dict[tuple, Teacher] = {}  # on a process other than the main one: teachers loaded once per process


@dataclass
class ScoreShare(Task):
    """The other processes' part of :func:`score_shared`: the teacher, loaded once per process, scores its share."""

    spec: str
    cache_dir: Path
    encoder_config: Any

    def serve(self, processes: Processes) -> None:
        key = (self.spec, repr(self.encoder_config))
        if key not in _SERVING:
            teacher = parse_teacher(self.spec)
            teacher.load(self.encoder_config)
            _SERVING[key] = teacher
        share = processes.scatter(None)
        processes.gather(_score_texts(_SERVING[key], share, self.cache_dir, self.encoder_config))
