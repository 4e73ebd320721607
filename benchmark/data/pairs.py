"""(query, document) pairs by id, and a teacher's scores of them, held as arrays.

A teacher scores every (query, positive) and (query, negative) pair of the training triples: some 80M pairs for
MS MARCO's ``train/triples-small``. As a dict of tuples of strings that is about 250 bytes a pair (some 20 GB a
teacher); :class:`Pairs` holds them as int32 codes into sorted id tables (the layout of
:class:`~benchmark.data.triples.TripleStore`) and :class:`PairScores` adds one float64 array, about 16 bytes a
pair. Both keep the sorted order of the ``(query id, document id)`` tuples and still read as a sequence of
tuples and a mapping from tuples to floats, so code written for lists and dicts works unchanged.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import overload

import numpy as np

from benchmark.data.triples import CHUNK, IdCoder, TripleStore

PairKey = tuple[str, str]  # (query id, document id)


def _encoded(ids: Sequence[str]) -> np.ndarray:
    return np.array([i.encode() for i in ids], dtype=bytes) if len(ids) else np.array([], dtype="S1")


def _codes_in(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The position of each id (bytes) in a sorted ``table``, or -1 where it is not there."""
    if not len(table) or not len(ids):
        return np.full(len(ids), -1, dtype=np.int64)
    at = np.searchsorted(table, ids).clip(max=len(table) - 1)
    return np.where(table[at] == ids, at, -1).astype(np.int64)


class Pairs(Sequence[PairKey]):
    """Distinct pairs in sorted order, as codes into a sorted query-id table and a sorted document-id table."""

    __slots__ = ("doc_table", "docs", "queries", "query_table")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, query_table: np.ndarray, doc_table: np.ndarray, queries: np.ndarray, docs: np.ndarray) -> None:
        self.query_table, self.doc_table = query_table, doc_table
        self.queries, self.docs = queries, docs

    # --- building -------------------------------------------------------------------------------------
    @classmethod
    def _from_codes(
        cls, query_table: np.ndarray, doc_table: np.ndarray, queries: np.ndarray, docs: np.ndarray, last: bool = False
    ) -> tuple[Pairs, np.ndarray]:
        """The distinct pairs of the codes, sorted, and for each the index of its first (``last``: last) row."""
        width = max(len(doc_table), 1)
        keys = queries.astype(np.int64) * width + docs
        keys, first = np.unique(keys[::-1] if last else keys, return_index=True)
        rows = len(queries) - 1 - first if last else first
        return cls(query_table, doc_table, (keys // width).astype(np.int32), (keys % width).astype(np.int32)), rows

    @classmethod
    def _coded(cls, pairs: Iterable[PairKey]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Sorted id tables and the rows' codes, coded chunk by chunk (no Python object kept per pair)."""
        query_coder, doc_coder = IdCoder(), IdCoder()
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        iterator = iter(pairs)
        while chunk := list(itertools.islice(iterator, CHUNK)):
            parts.append((query_coder.code([q for q, _ in chunk]), doc_coder.code([d for _, d in chunk])))
        query_table, query_renumber = query_coder.table()
        doc_table, doc_renumber = doc_coder.table()
        empty = np.array([], dtype=np.int32)
        queries = query_renumber[np.concatenate([p[0] for p in parts])] if parts else empty
        docs = doc_renumber[np.concatenate([p[1] for p in parts])] if parts else empty
        return query_table, doc_table, queries, docs

    @classmethod
    def from_keys(cls, pairs: Iterable[PairKey]) -> Pairs:
        """The distinct ``(query id, document id)`` pairs, sorted (what ``sorted(set(pairs))`` gives)."""
        if isinstance(pairs, Pairs):
            return pairs
        return cls._from_codes(*cls._coded(pairs))[0]

    @classmethod
    def of_triples(cls, triples: Sequence) -> Pairs:
        """Every (query, positive) and (query, negative) pair of the triples; a store's codes are reused."""
        if not isinstance(triples, TripleStore):
            return cls.from_keys((t[0], d) for t in triples for d in (t[1], t[2]))
        queries, positives, negatives = triples.codes()
        both = np.concatenate([queries, queries]), np.concatenate([positives, negatives])
        return cls._from_codes(triples.query_table, triples.doc_table, *both)[0]

    # --- lookup and set operations ----------------------------------------------------------------------
    def _keys(self) -> np.ndarray:
        return self.queries.astype(np.int64) * max(len(self.doc_table), 1) + self.docs

    def _locate(self, query_ids: np.ndarray, doc_ids: np.ndarray) -> np.ndarray:
        """Positions in this sequence of the pairs given as two arrays of bytes ids; -1 where absent."""
        queries, docs = _codes_in(self.query_table, query_ids), _codes_in(self.doc_table, doc_ids)
        wanted = queries * max(len(self.doc_table), 1) + docs
        keys = self._keys()
        if not len(keys):
            return np.full(len(wanted), -1, dtype=np.int64)
        at = np.searchsorted(keys, wanted).clip(max=len(keys) - 1)
        return np.where((queries >= 0) & (docs >= 0) & (keys[at] == wanted), at, -1)

    def positions(self, query_ids: Sequence[str], doc_ids: Sequence[str]) -> np.ndarray:
        """Where each pair ``(query_ids[i], doc_ids[i])`` is in this sequence, or -1."""
        return self._locate(_encoded(query_ids), _encoded(doc_ids))

    def positions_of(self, other: Pairs) -> np.ndarray:
        """Where each of ``other``'s pairs is in this sequence, or -1 (vectorised over the id tables)."""
        if other.query_table is self.query_table and other.doc_table is self.doc_table:
            keys = self._keys()
            wanted = other._keys()
            if not len(keys):
                return np.full(len(wanted), -1, dtype=np.int64)
            at = np.searchsorted(keys, wanted).clip(max=len(keys) - 1)
            return np.where(keys[at] == wanted, at, -1)
        return self._locate(other.query_table[other.queries], other.doc_table[other.docs])

    def take(self, positions: np.ndarray) -> Pairs:
        """The pairs at sorted ``positions``, sharing the id tables."""
        return Pairs(self.query_table, self.doc_table, self.queries[positions], self.docs[positions])

    def difference(self, other: Pairs) -> Pairs:
        """This sequence's pairs that are not in ``other`` (``sorted(set(self) - set(other))``)."""
        return self.take(np.flatnonzero(other.positions_of(self) < 0))

    def union(self, other: Pairs) -> Pairs:
        """The pairs of both, sorted and distinct."""
        if not len(other):
            return self
        extra = other.difference(self)
        if not len(extra):
            return self
        return Pairs.from_keys(itertools.chain(self, extra))

    def digest(self) -> str:
        """A content hash of the pairs (for cache keys), the same for equal pairs whatever their tables."""
        digest = hashlib.sha1()
        for start in range(0, len(self), CHUNK):
            part = self[start : start + CHUNK]
            digest.update(b"\0".join(part.query_table[part.queries].tolist()) + b"\1")
            digest.update(b"\0".join(part.doc_table[part.docs].tolist()) + b"\1")
        return digest.hexdigest()

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in (self.query_table, self.doc_table, self.queries, self.docs))

    # --- the Sequence protocol ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.queries)

    @overload
    def __getitem__(self, index: int) -> PairKey: ...

    @overload
    def __getitem__(self, index: slice) -> Pairs: ...

    def __getitem__(self, index: int | slice) -> PairKey | Pairs:
        if isinstance(index, slice):
            return Pairs(self.query_table, self.doc_table, self.queries[index], self.docs[index])
        if not -len(self) <= index < len(self):
            raise IndexError("pair index out of range")
        return self.query_table[self.queries[index]].decode(), self.doc_table[self.docs[index]].decode()

    def __iter__(self) -> Iterator[PairKey]:
        for start in range(0, len(self), CHUNK):
            queries = self.query_table[self.queries[start : start + CHUNK]].tolist()
            docs = self.doc_table[self.docs[start : start + CHUNK]].tolist()
            for query, doc in zip(queries, docs, strict=True):
                yield query.decode(), doc.decode()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == tuple(b) for a, b in zip(self, other, strict=True))

    def __repr__(self) -> str:
        return f"Pairs({len(self)} pairs)"


class PairScores(Mapping[PairKey, float]):
    """A score for each of some :class:`Pairs`: a mapping from ``(query id, document id)`` to float, in the pairs'
    sorted order, held as one float64 array beside the pairs' codes."""

    __slots__ = ("pairs", "scores")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, pairs: Pairs, scores: np.ndarray) -> None:
        if len(pairs) != len(scores):
            raise ValueError(f"{len(pairs)} pairs but {len(scores)} scores")
        self.pairs, self.scores = pairs, np.asarray(scores, dtype=np.float64)

    @classmethod
    def empty(cls) -> PairScores:
        return cls.from_items([])

    @classmethod
    def from_items(cls, items: Iterable[tuple[PairKey, float]]) -> PairScores:
        """From ``(pair, score)`` items (a dict's ``items()``); a pair given twice keeps its last score."""
        if isinstance(items, PairScores):
            return items
        values: list[float] = []

        def keys() -> Iterator[PairKey]:
            for pair, score in items:
                values.append(score)
                yield pair

        query_table, doc_table, queries, docs = Pairs._coded(keys())
        pairs, rows = Pairs._from_codes(query_table, doc_table, queries, docs, last=True)
        return cls(pairs, np.asarray(values, dtype=np.float64)[rows] if len(rows) else np.zeros(0))

    @classmethod
    def of(cls, scores: Mapping[PairKey, float]) -> PairScores:
        """``scores`` as a PairScores (itself when it already is one)."""
        return scores if isinstance(scores, PairScores) else cls.from_items(scores.items())

    # --- lookup -----------------------------------------------------------------------------------------
    def lookup(self, query_ids: Sequence[str], doc_ids: Sequence[str]) -> np.ndarray:
        """The scores of the pairs ``(query_ids[i], doc_ids[i])``; NaN where a pair has none."""
        at = self.pairs.positions(query_ids, doc_ids)
        found = self.scores[at.clip(min=0)] if len(self.scores) else np.zeros(len(at))
        return np.where(at >= 0, found, np.nan)

    def on(self, pairs: Pairs) -> PairScores:
        """The scores of those of ``pairs`` that have one."""
        at = self.pairs.positions_of(pairs)
        keep = np.flatnonzero(at >= 0)
        return PairScores(pairs.take(keep), self.scores[at[keep]])

    def merged(self, other: Mapping[PairKey, float]) -> PairScores:
        """The pairs of both; a pair in both keeps this mapping's score (a pair's score is the same anywhere)."""
        other = PairScores.of(other)
        extra = other.on(other.pairs.difference(self.pairs))
        if not len(extra):
            return self
        return PairScores.from_items(itertools.chain(self.items(), extra.items()))

    @property
    def nbytes(self) -> int:
        return self.pairs.nbytes + self.scores.nbytes

    # --- files --------------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write to ``path`` (.npz) through a temporary file, so a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial.npz")
        pairs = self.pairs
        np.savez(
            partial,
            query_table=pairs.query_table,
            doc_table=pairs.doc_table,
            queries=pairs.queries,
            docs=pairs.docs,
            scores=self.scores,
        )
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> PairScores:
        with np.load(path) as saved:
            pairs = Pairs(saved["query_table"], saved["doc_table"], saved["queries"], saved["docs"])
            return cls(pairs, saved["scores"])

    # --- the Mapping protocol ---------------------------------------------------------------------------
    def __getitem__(self, pair: PairKey) -> float:
        at = int(self.pairs.positions([pair[0]], [pair[1]])[0])
        if at < 0:
            raise KeyError(pair)
        return float(self.scores[at])

    def __contains__(self, pair: object) -> bool:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            return False
        return bool(self.pairs.positions([pair[0]], [pair[1]])[0] >= 0)

    def __iter__(self) -> Iterator[PairKey]:
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def items(self):  # type: ignore[override]  # in order, without a lookup per pair
        return zip(self.pairs, self.scores.tolist(), strict=True)

    def __repr__(self) -> str:
        return f"PairScores({len(self)} pairs)"


def scores_of(scores: Mapping[PairKey, float], query_ids: Sequence[str], doc_ids: Sequence[str]) -> np.ndarray:
    """The scores of ``(query_ids[i], doc_ids[i])`` from any mapping (NaN where absent): one vectorised lookup for
    :class:`PairScores`, a lookup a pair for a plain dict."""
    if isinstance(scores, PairScores):
        return scores.lookup(query_ids, doc_ids)
    return np.array([scores.get(pair, np.nan) for pair in zip(query_ids, doc_ids, strict=True)], dtype=np.float64)
