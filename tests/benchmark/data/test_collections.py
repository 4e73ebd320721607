"""Datasets: a local BEIR folder read through ir_datasets, and the errors a user sees for bad input."""

from __future__ import annotations

import pytest

from benchmark.common.errors import UsageError
from benchmark.data.collections import evaluation_collection, training_collection
from tests.benchmark.conftest import DOCUMENTS, QUERIES
from tests.tiny import write_qrels


def test_folder_loads_queries_qrels_and_documents(tiny_beir):
    """The train split has every query and the train judgments; texts come from the docstore."""
    collection = training_collection(str(tiny_beir))
    assert {q: collection.queries[q] for q in collection.qrels} == {q: QUERIES[q] for q in collection.qrels}
    assert collection.qrels == {
        "q1": {"d1": 1, "d2": 1},
        "q2": {"d3": 1},
        "q3": {"d5": 1},
        "q4": {"d7": 1},
        "q5": {"d9": 1},
        "q6": {"d11": 1},
    }
    assert collection.document_count == len(DOCUMENTS)
    texts = collection.document_texts(["d3", "d1"])
    title, body = DOCUMENTS["d3"]
    assert texts[0] == f"{title} {body}"  # ir_datasets' default_text of a BEIR document: title and text
    assert texts[1] == " ".join(DOCUMENTS["d1"])
    assert dict(collection.iter_documents())["d12"] == " ".join(DOCUMENTS["d12"])


def test_folder_split_queries_are_the_judged_ones(tiny_beir):
    """The train split of a folder has the train queries only, as the docstring and ir_datasets' splits do."""
    assert set(training_collection(str(tiny_beir)).queries) == {"q1", "q2", "q3", "q4", "q5", "q6"}


def test_evaluation_split_of_folder_is_test(tiny_beir):
    """The evaluation split of a folder is qrels/test.tsv, never the training judgments."""
    collection = evaluation_collection(str(tiny_beir))
    assert collection.qrels == {"q7": {"d12": 1}, "q8": {"d10": 1}, "q3": {"d6": 1}}
    assert collection.corpus_key == training_collection(str(tiny_beir)).corpus_key


def test_folder_split_can_be_named(tiny_beir):
    """folder:split picks another qrels file."""
    collection = training_collection(f"{tiny_beir}:test")
    assert set(collection.qrels) == {"q7", "q8", "q3"}


def test_folder_without_corpus_names_it(tiny_beir):
    """A folder missing corpus.jsonl is refused with a message naming the missing file."""
    (tiny_beir / "corpus.jsonl").unlink()
    with pytest.raises(UsageError, match="corpus.jsonl"):
        training_collection(str(tiny_beir))
    with pytest.raises(UsageError, match="corpus.jsonl"):
        evaluation_collection(str(tiny_beir))


def test_missing_folder_is_a_usage_error(tmp_path):
    """A path that does not exist is reported as such."""
    with pytest.raises(UsageError, match="does not exist"):
        training_collection(str(tmp_path / "nowhere"))


def test_unknown_dataset_id_is_a_usage_error():
    """An id ir_datasets does not know is refused before any download is attempted."""
    with pytest.raises(UsageError, match="unknown dataset 'no-such-dataset/at-all'"):
        training_collection("no-such-dataset/at-all")
    with pytest.raises(UsageError, match="unknown dataset"):
        evaluation_collection("no-such-dataset/at-all/test")


def test_qrels_naming_an_absent_document(tiny_beir):
    """Judgments that name a document the corpus lacks are refused before any work, naming file, line and id."""
    write_qrels(tiny_beir / "qrels" / "train.tsv", [("q1", "d1", 1), ("q2", "ghost", 1)])
    with pytest.raises(UsageError, match=r"qrels/train.tsv, line 3: document 'ghost' is not in corpus.jsonl"):
        training_collection(str(tiny_beir))
    collection = evaluation_collection(str(tiny_beir))  # the test split names no absent document
    assert collection.document_texts(["d1"]) == [" ".join(DOCUMENTS["d1"])]
    with pytest.raises(UsageError, match="'ghost'"):
        collection.document_texts(["ghost"])


CORPUS_LINE = '{"_id": "d99", "title": "t", "text": "x"}'


@pytest.mark.parametrize(
    ("file", "line", "message"),
    [
        ("corpus.jsonl", "{not json", r"corpus.jsonl, line 13: not a JSON object"),
        ("corpus.jsonl", "", r"corpus.jsonl, line 13: not a JSON object"),
        ("corpus.jsonl", '["d99", "t", "x"]', r"corpus.jsonl, line 13: not a JSON object"),
        ("corpus.jsonl", '{"_id": "d99", "text": "x"}', r"corpus.jsonl, line 13: no 'title' field"),
        ("corpus.jsonl", '{"_id": 99, "title": "t", "text": "x"}', r"line 13: '_id' must be a non-empty string"),
        ("corpus.jsonl", '{"_id": "d1", "title": "t", "text": "x"}', r"line 13: id 'd1' was already given on line 1"),
        ("queries.jsonl", '{"_id": "q99"}', r"queries.jsonl, line 9: no 'text' field"),
        ("qrels/train.tsv", "q1\td1", r"train.tsv, line 9: 2 columns"),
        ("qrels/train.tsv", "q1\td1\thigh", r"train.tsv, line 9: score 'high' is not a whole number"),
        ("qrels/train.tsv", "q99\td1\t1", r"train.tsv, line 9: query 'q99' is not in queries.jsonl"),
    ],
)
def test_a_malformed_line_is_named_by_file_and_line(tiny_beir, file, line, message):
    """Every line is checked the way ir_datasets will read it; the first bad one is reported before any work."""
    with open(tiny_beir / file, "a") as stream:
        stream.write(line + "\n")
    with pytest.raises(UsageError, match=message):
        training_collection(str(tiny_beir))


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("corpus.jsonl", "", r"corpus.jsonl is empty"),
        ("queries.jsonl", "", r"queries.jsonl is empty"),
        ("qrels/train.tsv", "query-id\tcorpus-id\tscore\n", r"train.tsv holds no judgments"),
        ("qrels/train.tsv", "q1\td1\t1\n", r"train.tsv, line 1: not the header"),
        ("corpus.jsonl", b"\xff\xfe" + CORPUS_LINE.encode(), r"corpus.jsonl: not UTF-8 text"),
    ],
)
def test_empty_or_unreadable_files_are_refused(tiny_beir, file, content, message):
    path = tiny_beir / file
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UsageError, match=message):
        training_collection(str(tiny_beir))


def test_an_edited_corpus_is_read_again(tiny_beir):
    """ir_datasets keeps a docstore per corpus: an edited corpus.jsonl gets a new one, never the stale texts."""
    before = training_collection(str(tiny_beir))
    assert before.document_texts(["d1"]) == [" ".join(DOCUMENTS["d1"])]
    lines = (tiny_beir / "corpus.jsonl").read_text().splitlines()
    lines[0] = '{"_id": "d1", "title": "Edited", "text": "a new text for the first document"}'
    (tiny_beir / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    after = training_collection(str(tiny_beir))
    assert after.corpus_key != before.corpus_key
    assert after.document_texts(["d1"]) == ["Edited a new text for the first document"]


def write_msmarco_folder(folder, triples: list[tuple[str, str, str]]):
    """A tiny folder in MS MARCO passage's layout: collection, train queries and the docpairs ids file."""
    folder.mkdir()
    (folder / "collection.tsv").write_text("".join(f"{pid}\tpassage {pid}\n" for pid in ("0", "7", "1234567")))
    (folder / "queries.train.tsv").write_text("121352\twhat is a triple\n1000\tanother query\n")
    (folder / "qidpidtriples.train.tsv").write_text("".join("\t".join(t) + "\n" for t in triples))
    return folder


def test_msmarco_layout_folder_trains_on_its_docpairs(tmp_path):
    """collection.tsv, queries.train.tsv and qidpidtriples.train.tsv are read by ir_datasets into the store."""
    triples = [("121352", "7", "0"), ("1000", "1234567", "7"), ("121352", "7", "1234567")]
    collection = training_collection(str(write_msmarco_folder(tmp_path / "msmarco", triples)))
    assert collection.has_docpairs() and collection.qrels == {}
    assert list(collection.docpairs()) == triples
    assert list(collection.docpairs(limit=2)) == triples[:2]
    assert collection.queries["1000"] == "another query"
    assert collection.document_texts(["1234567", "0"]) == ["passage 1234567", "passage 0"]


def test_msmarco_layout_folder_is_not_an_evaluation_set(tmp_path):
    """It has no judgments: the error names --eval."""
    folder = write_msmarco_folder(tmp_path / "msmarco", [("1000", "0", "7")])
    with pytest.raises(UsageError, match="--eval"):
        evaluation_collection(str(folder))


def test_msmarco_layout_folder_missing_its_docpairs_is_refused(tmp_path):
    folder = write_msmarco_folder(tmp_path / "msmarco", [("1000", "0", "7")])
    (folder / "qidpidtriples.train.tsv").unlink()
    with pytest.raises(UsageError, match="qidpidtriples.train.tsv"):
        training_collection(str(folder))
