"""Training examples: a query with one relevant and one non-relevant document, by id, and a compact store of
many of them.

MS MARCO's ``train/triples-small`` has about 40M docpairs; as Python objects (a tuple and three strings each)
they would take some 9 GB before the seeded order and the splits copy them. A :class:`TripleStore` holds them
as int32 codes into sorted tables of the distinct query and document ids, and orders, prefixes and splits as
index arrays over the same codes, while every element it yields is still a :class:`Triple`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from typing import NamedTuple, overload

import numpy as np

CHUNK = 1 << 16  # rows coded (or decoded) per step: big enough for numpy to pay, small enough to stay bounded


class Triple(NamedTuple):
    """(query, positive, negative) by id; texts are looked up in the collection."""

    query_id: str
    positive_id: str
    negative_id: str


class IdCoder:
    """Codes of ids in the order they are first seen, then renumbered to the ids' sorted order."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def code(self, ids: Sequence[str]) -> np.ndarray:
        codes = self.codes
        new = [i for i in dict.fromkeys(ids) if i not in codes]  # the loops run in C but for this one
        codes.update(zip(new, range(len(codes), len(codes) + len(new)), strict=True))
        return np.fromiter(map(codes.__getitem__, ids), dtype=np.int32, count=len(ids))

    def table(self) -> tuple[np.ndarray, np.ndarray]:
        """The ids sorted as Python sorts str (UTF-8 bytes sort as code points do), and old code -> new code."""
        ids = np.array([i.encode() for i in self.codes], dtype=bytes) if self.codes else np.array([], dtype="S1")
        self.codes = {}
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        if len(ids) > 1 and bool(np.any(ids[1:] == ids[:-1])):  # numpy drops trailing NUL bytes of fixed-width ids
            raise ValueError("two ids differ only in trailing NUL characters; remove them from the ids")
        renumber = np.empty(len(order), dtype=np.int32)
        renumber[order] = np.arange(len(order), dtype=np.int32)
        return ids, renumber


class TripleStore(Sequence[Triple]):
    """Triples as codes into sorted id tables (one for queries, one for positives and negatives alike, so that
    code order is the order of :class:`Triple` tuples), and an optional array of rows that selects and orders
    them. Slices, prefixes and reorderings share the codes; elements are decoded to ``Triple`` on access."""

    __slots__ = ("doc_table", "negatives", "positives", "queries", "query_table", "rows")
    __hash__ = None  # type: ignore[assignment]  # mutable-looking like the list it replaces; compared by content

    def __init__(
        self,
        query_table: np.ndarray,
        doc_table: np.ndarray,
        queries: np.ndarray,
        positives: np.ndarray,
        negatives: np.ndarray,
        rows: np.ndarray | None = None,
    ) -> None:
        self.query_table, self.doc_table = query_table, doc_table
        self.queries, self.positives, self.negatives = queries, positives, negatives
        self.rows = rows

    # --- building -------------------------------------------------------------------------------------
    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[str]]) -> TripleStore:
        """Code (query, positive, negative) id rows chunk by chunk, so no Python object per triple is kept."""
        query_coder, doc_coder = IdCoder(), IdCoder()
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        iterator = iter(rows)
        while chunk := list(itertools.islice(iterator, CHUNK)):
            queries, positives, negatives = (list(map(itemgetter(column), chunk)) for column in range(3))
            parts.append((query_coder.code(queries), doc_coder.code(positives), doc_coder.code(negatives)))
        query_table, query_renumber = query_coder.table()
        doc_table, doc_renumber = doc_coder.table()

        def column(index: int, renumber: np.ndarray) -> np.ndarray:
            codes = np.concatenate([part[index] for part in parts]) if parts else np.array([], dtype=np.int32)
            return renumber[codes] if len(codes) else codes

        return cls(query_table, doc_table, column(0, query_renumber), column(1, doc_renumber), column(2, doc_renumber))

    @classmethod
    def from_triples(cls, triples: Iterable[Sequence[str]]) -> TripleStore:
        """A store of ``triples`` (itself when it already is one)."""
        return triples if isinstance(triples, TripleStore) else cls.from_rows(triples)

    # --- views ----------------------------------------------------------------------------------------
    def _with_rows(self, rows: np.ndarray) -> TripleStore:
        return TripleStore(self.query_table, self.doc_table, self.queries, self.positives, self.negatives, rows)

    def take(self, indices: np.ndarray) -> TripleStore:
        """The triples at ``indices`` (positions in this store), in that order, sharing the codes."""
        indices = np.asarray(indices)
        return self._with_rows(indices if self.rows is None else self.rows[indices])

    def codes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query, positive, negative) codes of this store's triples, in its order."""
        if self.rows is None:
            return self.queries, self.positives, self.negatives
        return self.queries[self.rows], self.positives[self.rows], self.negatives[self.rows]

    def compact(self) -> TripleStore:
        """The same triples with their own codes and no rows (for a view that drops most of its base)."""
        return self if self.rows is None else TripleStore(self.query_table, self.doc_table, *self.codes())

    def with_queries(self, query_ids: Iterable[str]) -> TripleStore:
        """The triples of the given queries, in this store's order."""
        wanted = np.array([query.encode() for query in query_ids], dtype=bytes)
        at = np.searchsorted(self.query_table, wanted).clip(max=max(len(self.query_table) - 1, 0))
        member = np.zeros(len(self.query_table), dtype=bool)
        if len(self.query_table) and len(wanted):
            member[at[self.query_table[at] == wanted]] = True
        return self.take(np.flatnonzero(member[self.codes()[0]]))

    def query_ids(self, codes: np.ndarray) -> list[str]:
        return [query.decode() for query in self.query_table[codes].tolist()]

    def doc_ids(self, codes: np.ndarray) -> list[str]:
        return [doc.decode() for doc in self.doc_table[codes].tolist()]

    def positive_ids(self) -> set[str]:
        """The distinct positives, decoded once each rather than once a triple."""
        return set(self.doc_ids(np.unique(self.codes()[1])))

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays this store holds (its codes, tables and rows)."""
        arrays = [self.query_table, self.doc_table, self.queries, self.positives, self.negatives]
        return sum(array.nbytes for array in arrays) + (0 if self.rows is None else self.rows.nbytes)

    # --- the Sequence protocol ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.queries if self.rows is None else self.rows)

    @overload
    def __getitem__(self, index: int) -> Triple: ...

    @overload
    def __getitem__(self, index: slice) -> TripleStore: ...

    def __getitem__(self, index: int | slice) -> Triple | TripleStore:
        if isinstance(index, slice):
            if self.rows is not None:
                return self._with_rows(self.rows[index])
            return TripleStore(
                self.query_table, self.doc_table, self.queries[index], self.positives[index], self.negatives[index]
            )
        if not -len(self) <= index < len(self):
            raise IndexError("triple index out of range")
        row = index if self.rows is None else int(self.rows[index])
        return Triple(
            self.query_table[self.queries[row]].decode(),
            self.doc_table[self.positives[row]].decode(),
            self.doc_table[self.negatives[row]].decode(),
        )

    def __iter__(self) -> Iterator[Triple]:
        for start in range(0, len(self), CHUNK):
            queries, positives, negatives = self[start : start + CHUNK].codes()
            for query, positive, negative in zip(
                self.query_table[queries].tolist(),
                self.doc_table[positives].tolist(),
                self.doc_table[negatives].tolist(),
                strict=True,
            ):
                yield Triple(query.decode(), positive.decode(), negative.decode())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        if len(self) != len(other):
            return False
        if (
            isinstance(other, TripleStore)
            and np.array_equal(self.query_table, other.query_table)
            and np.array_equal(self.doc_table, other.doc_table)
        ):
            return all(np.array_equal(mine, theirs) for mine, theirs in zip(self.codes(), other.codes(), strict=True))
        return all(mine == theirs for mine, theirs in zip(self, other, strict=True))

    def __repr__(self) -> str:
        return f"TripleStore({len(self)} triples)"
