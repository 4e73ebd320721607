"""Datasets: an ir_datasets id or a local folder in BEIR layout, read through ir_datasets.

A :class:`Collection` is one split: its documents, queries and judgments, and (MS MARCO style) its training
docpairs where the dataset has them. Texts are what ``default_text()`` of ir_datasets gives (title and body for
BEIR), so every component encodes the same strings.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import ir_datasets
from ir_datasets.datasets.base import Dataset
from ir_datasets.datasets.beir import BeirDocs, BeirQrels, BeirQueries, BeirTitleDoc
from ir_datasets.formats import GenericQuery, TsvDocPairs, TsvDocs, TsvQueries
from ir_datasets.util import LocalDownload

from benchmark.common.errors import UsageError
from benchmark.data.triples import TripleStore

BEIR_FILES = ("corpus.jsonl", "queries.jsonl", "qrels")
BEIR_FIELDS = {"corpus.jsonl": ("_id", "title", "text"), "queries.jsonl": ("_id", "text")}
MSMARCO_FILES = ("collection.tsv", "queries.train.tsv", "qidpidtriples.train.tsv")
QRELS_HEADER = "query-id\tcorpus-id\tscore"
NO_NETWORK_HINT = (
    "with no network, copy a seeded ir_datasets folder (for SciFact: ../shared/ir_datasets) to a writable place "
    "and set IR_DATASETS_HOME to it, or pass a local BEIR folder"
)


@dataclass
class Collection:
    """One split of a dataset: documents, queries, judgments and, where present, training docpairs."""

    name: str
    dataset: Dataset
    corpus_key: str = field(default="")
    judged_queries_only: bool = False  # a BEIR folder's queries.jsonl holds every split's queries

    def _guard(self, action, what: str):
        try:
            return action()
        except UsageError:
            raise
        except (OSError, ConnectionError) as error:
            raise UsageError(
                f"{self.name}: cannot read its {what} ({type(error).__name__}); {NO_NETWORK_HINT}"
            ) from None
        except (ValueError, KeyError, IndexError, TypeError, RuntimeError, AssertionError) as error:
            raise UsageError(f"{self.name}: its {what} could not be parsed ({error}); fix the file") from None

    @cached_property
    def queries(self) -> dict[str, str]:
        """Query id -> text, for the queries that have judgments (or all when there are none)."""
        texts = self._guard(lambda: {q.query_id: q.default_text() for q in self.dataset.queries_iter()}, "queries")
        if self.judged_queries_only:
            texts = {query_id: text for query_id, text in texts.items() if query_id in self.qrels}
        if not texts:
            raise UsageError(f"{self.name}: has no queries; choose a split with queries")
        return texts

    @cached_property
    def qrels(self) -> dict[str, dict[str, int]]:
        """Query id -> {document id: relevance}."""
        if not self.dataset.has_qrels():
            return {}

        def read() -> dict[str, dict[str, int]]:
            judged: dict[str, dict[str, int]] = {}
            for qrel in self.dataset.qrels_iter():
                judged.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
            return judged

        return self._guard(read, "qrels")

    def has_docpairs(self) -> bool:
        return self.dataset.has_docpairs()

    def docpairs(self, limit: int | None = None) -> TripleStore:
        """The dataset's own training triples (query, first document, second document), as ir_datasets gives,
        coded into a compact store as they are read (MS MARCO's 40M docpairs in under 64 bytes each)."""
        return self._guard(
            lambda: TripleStore.from_rows(
                (p.query_id, p.doc_id_a, p.doc_id_b) for p in itertools.islice(self.dataset.docpairs_iter(), limit)
            ),
            "docpairs",
        )

    def iter_documents(self) -> Iterator[tuple[str, str]]:
        """(document id, text) in collection order."""
        try:
            for doc in self.dataset.docs_iter():
                yield doc.doc_id, doc.default_text()
        except (OSError, ConnectionError) as error:
            raise UsageError(
                f"{self.name}: cannot read its documents ({type(error).__name__}); {NO_NETWORK_HINT}"
            ) from None

    @cached_property
    def document_count(self) -> int:
        count = self._guard(self.dataset.docs_count, "documents")
        return count if count is not None else sum(1 for _ in self.iter_documents())

    @cached_property
    def _store(self):
        return self._guard(self.dataset.docs_store, "documents")

    def document_texts(self, doc_ids: list[str]) -> list[str]:
        """Texts of the given documents, looked up in ir_datasets' docstore."""
        found = self._guard(lambda: self._store.get_many(doc_ids), "documents")
        missing = [d for d in doc_ids if d not in found]
        if missing:
            raise UsageError(
                f"{self.name}: document {missing[0]!r} is named in its judgments or triples but is not in "
                "its corpus; fix the qrels or the corpus"
            )
        return [found[d].default_text() for d in doc_ids]


def _corpus_key(dataset: Dataset, dataset_id: str) -> str:
    """Splits that share a corpus share its key, so a BM25 index or embeddings of it are built once."""
    if not dataset.has_docs():
        return dataset_id
    try:
        return dataset.docs_namespace()
    except TypeError:  # ir_datasets' vaswani declares docs_namespace without self: its own id is its namespace
        return dataset_id


def _registered(dataset_id: str) -> bool:
    return dataset_id in ir_datasets.registry._registered  # noqa: SLF001 - no public membership test


def _stamp(path: Path) -> tuple[str, int, int]:
    """A file's identity for caches: its path, size and modification time (an edited file is read again)."""
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=8)
def _jsonl_ids(stamp: tuple[str, int, int]) -> frozenset[str]:
    """The ids of a BEIR corpus.jsonl or queries.jsonl, every line checked the way ir_datasets will read it, so
    a bad line is reported by file and line before any work instead of failing later inside a library."""
    path = Path(stamp[0])
    fields = BEIR_FIELDS[path.name]
    first_line: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8") as stream:
            for number, line in enumerate(stream, start=1):
                where = f"{path}, line {number}"
                try:
                    record = json.loads(line)
                except ValueError as error:
                    raise UsageError(f"{where}: not a JSON object ({error}); fix or remove the line") from None
                if not isinstance(record, dict):
                    raise UsageError(f"{where}: not a JSON object; each line must be one, with {', '.join(fields)}")
                missing = [name for name in fields if name not in record]
                if missing:
                    raise UsageError(f"{where}: no {missing[0]!r} field; each line needs {', '.join(fields)}")
                wrong = [name for name in fields if not isinstance(record[name], str)]
                if wrong or not record["_id"]:
                    name = wrong[0] if wrong else "_id"
                    raise UsageError(f"{where}: {name!r} must be a non-empty string, got {record[name]!r}")
                if record["_id"] in first_line:
                    raise UsageError(
                        f"{where}: id {record['_id']!r} was already given on line {first_line[record['_id']]}; "
                        "ids must be unique"
                    )
                first_line[record["_id"]] = number
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8") from None
    if not first_line:
        raise UsageError(f"{path} is empty; a BEIR folder needs at least one line in it")
    return frozenset(first_line)


def check_beir_split(folder: Path, split: str) -> None:
    """Every line of corpus.jsonl, queries.jsonl and qrels/<split>.tsv, and that the judgments name known
    documents and queries: one line naming the file and line of the first problem."""
    documents = _jsonl_ids(_stamp(folder / "corpus.jsonl"))
    queries = _jsonl_ids(_stamp(folder / "queries.jsonl"))
    path = folder / "qrels" / f"{split}.tsv"
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8") from None
    if not lines or lines[0].strip() != QRELS_HEADER:
        raise UsageError(f"{path}, line 1: not the header query-id<TAB>corpus-id<TAB>score; add it")
    judged = 0
    for number, line in enumerate(lines[1:], start=2):
        if line == "\n":
            continue  # ir_datasets skips empty lines
        where = f"{path}, line {number}"
        columns = line.rstrip().split()
        if len(columns) != 3:
            raise UsageError(f"{where}: {len(columns)} columns, expected query-id<TAB>corpus-id<TAB>score")
        query_id, doc_id, score = columns
        try:
            int(score)
        except ValueError:
            raise UsageError(f"{where}: score {score!r} is not a whole number") from None
        if doc_id not in documents:
            raise UsageError(f"{where}: document {doc_id!r} is not in corpus.jsonl; fix the qrels or the corpus")
        if query_id not in queries:
            raise UsageError(f"{where}: query {query_id!r} is not in queries.jsonl; fix the qrels or the queries")
        judged += 1
    if not judged:
        raise UsageError(f"{path} holds no judgments; add query-id<TAB>corpus-id<TAB>score lines")


def _folder_split(folder: Path, split: str) -> Collection:
    """A split of a local BEIR folder, checked line by line, then read by ir_datasets' own BEIR classes."""
    check_beir_split(folder, split)
    qrels_file = folder / "qrels" / f"{split}.tsv"
    # the corpus's size and time are in the key: ir_datasets' docstore (and our caches) of an edited corpus is rebuilt
    key = hashlib.sha1(repr(_stamp(folder / "corpus.jsonl")).encode()).hexdigest()[:12]
    dataset = Dataset(
        BeirDocs(f"local/{key}", LocalDownload(folder / "corpus.jsonl"), BeirTitleDoc),
        BeirQueries(f"local/{key}", LocalDownload(folder / "queries.jsonl"), GenericQuery),
        BeirQrels(LocalDownload(qrels_file), qrels_defs={}),
    )
    return Collection(name=f"{folder}:{split}", dataset=dataset, corpus_key=f"local/{key}", judged_queries_only=True)


def is_msmarco_folder(folder: Path) -> bool:
    """A folder in MS MARCO's layout (collection.tsv) rather than BEIR's."""
    return (folder / MSMARCO_FILES[0]).exists()


def _msmarco_folder(folder: Path) -> Collection:
    """A local folder in MS MARCO passage's layout, read by ir_datasets' own TSV classes: collection.tsv
    (pid, text), queries.train.tsv (qid, text) and qidpidtriples.train.tsv (qid, positive pid, negative pid: the
    ids file ir_datasets caches for msmarco-passage/train/triples-small). It trains on its docpairs."""
    missing = [name for name in MSMARCO_FILES if not (folder / name).exists()]
    if missing:
        raise UsageError(
            f"{folder} looks like an MS MARCO folder but lacks {', '.join(missing)}; it needs "
            f"{', '.join(MSMARCO_FILES)}"
        )
    key = hashlib.sha1(repr(_stamp(folder / MSMARCO_FILES[0])).encode()).hexdigest()[:12]
    dataset = Dataset(
        TsvDocs(LocalDownload(folder / MSMARCO_FILES[0]), namespace=f"local/{key}"),
        TsvQueries(LocalDownload(folder / MSMARCO_FILES[1]), namespace=f"local/{key}"),
        TsvDocPairs(LocalDownload(folder / MSMARCO_FILES[2])),
    )
    return Collection(name=f"{folder}:train", dataset=dataset, corpus_key=f"local/{key}")


def _check_folder(folder: Path) -> None:
    if is_msmarco_folder(folder):
        raise UsageError(
            f"{folder} is an MS MARCO-layout folder: it has training docpairs but no judgments to evaluate on; "
            "name the evaluation set with --eval (for example msmarco-passage/dev/small or a BEIR folder)"
        )
    missing = [name for name in BEIR_FILES if not (folder / name).exists()]
    if missing:
        raise UsageError(
            f"{folder} is not a BEIR folder: {', '.join(missing)} missing; it needs corpus.jsonl, "
            "queries.jsonl and qrels/<split>.tsv"
        )


def _split_of_folder(spec: str) -> tuple[Path, str | None]:
    """``folder`` or ``folder:split``."""
    path, _, split = spec.rpartition(":") if ":" in spec and not Path(spec).exists() else (spec, "", "")
    return Path(path), split or None


def is_folder(spec: str) -> bool:
    """A path (it exists, or is written as one) rather than an ir_datasets id."""
    path, _ = _split_of_folder(spec)
    return path.exists() or spec.startswith((".", "/", "~"))


def _load_id(dataset_id: str) -> Dataset:
    if not _registered(dataset_id):
        raise UsageError(
            f"unknown dataset {dataset_id!r}: neither an ir_datasets id nor a folder; see "
            "https://ir-datasets.com for ids (for example beir/scifact) or pass a BEIR folder"
        )
    return ir_datasets.load(dataset_id)


def training_collection(spec: str) -> Collection:
    """The split to train on: a folder's qrels/train.tsv, or the id itself or its ``/train`` child."""
    if is_folder(spec):
        folder, split = _split_of_folder(spec)
        if not folder.is_dir():
            raise UsageError(f"dataset folder {folder} does not exist; pass an ir_datasets id or a BEIR folder")
        if is_msmarco_folder(folder) and split in (None, "train"):
            return _msmarco_folder(folder)
        _check_folder(folder)
        split = split or "train"
        if not (folder / "qrels" / f"{split}.tsv").exists():
            raise UsageError(f"{folder} has no qrels/{split}.tsv to train on; add it or name a split as folder:split")
        return _folder_split(folder, split)
    for candidate in (dataset_id for dataset_id in (spec, f"{spec}/train") if _registered(dataset_id)):
        dataset = ir_datasets.load(candidate)
        if dataset.has_docpairs() or (dataset.has_qrels() and dataset.has_queries()):
            return Collection(name=candidate, dataset=dataset, corpus_key=_corpus_key(dataset, candidate))
    _load_id(spec)
    raise UsageError(f"dataset {spec!r} has neither docpairs nor qrels to train on; name its training split")


def evaluation_collection(spec: str) -> Collection:
    """An evaluation split: an id with qrels, or a folder's qrels/test.tsv (or dev.tsv)."""
    if is_folder(spec):
        folder, split = _split_of_folder(spec)
        if not folder.is_dir():
            raise UsageError(f"evaluation folder {folder} does not exist; pass an ir_datasets id or a BEIR folder")
        _check_folder(folder)
        if split is None:
            split = next((s for s in ("test", "dev") if (folder / "qrels" / f"{s}.tsv").exists()), None)
        if split is None or not (folder / "qrels" / f"{split}.tsv").exists():
            raise UsageError(f"{folder} has no qrels/test.tsv or dev.tsv; add one or name it as folder:split")
        return _folder_split(folder, split)
    dataset = _load_id(spec)
    if not (dataset.has_qrels() and dataset.has_queries() and dataset.has_docs()):
        raise UsageError(f"dataset {spec!r} lacks queries, qrels or documents to evaluate on; name a test split")
    return Collection(name=spec, dataset=dataset, corpus_key=_corpus_key(dataset, spec))


def require_judged(collection: Collection) -> None:
    """Refuse, before any work, an evaluation set none of whose queries has a judgment."""
    if not any(query_id in collection.queries for query_id in collection.qrels):
        raise UsageError(f"{collection.name} has no judged queries to evaluate on; name another --eval")


def default_evaluation(spec: str) -> str:
    """The evaluation split that goes with a training dataset: its ``test`` (or ``dev``) sibling."""
    if is_folder(spec):
        return _split_of_folder(spec)[0].as_posix()
    base = spec.removesuffix("/train")
    for candidate in (f"{base}/test", f"{base}/dev"):
        if _registered(candidate):
            return candidate
    raise UsageError(f"no test split known for {spec!r}; name the evaluation set with --eval")
