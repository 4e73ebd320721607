"""Shared fixtures of the harness tests: a tiny random BERT (made here, no network) and a tiny BEIR folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.encoder import BiEncoder, EncoderConfig
from tests.tiny import save_tiny_bert, write_beir_folder

# Every document and query shares the word "study", so BM25 ranks the whole corpus for every query.
_DOCUMENTS = {
    "d1": ("Vitamin D", "Vitamin D deficiency is linked to weaker bones and fractures in older adults."),
    "d2": ("Calcium intake", "Calcium supplements reduce bone loss in postmenopausal women."),
    "d3": ("Smoking and lungs", "Smoking tobacco causes lung cancer and chronic obstructive disease."),
    "d4": ("Air pollution", "Fine particulate air pollution increases the risk of lung disease."),
    "d5": ("Exercise", "Regular aerobic exercise lowers blood pressure and improves heart health."),
    "d6": ("Salt", "High salt diets raise blood pressure and the risk of stroke."),
    "d7": ("Sleep", "Short sleep duration is associated with obesity and insulin resistance."),
    "d8": ("Coffee", "Moderate coffee consumption is not associated with heart disease."),
    "d9": ("Antibiotics", "Overuse of antibiotics drives bacterial resistance in hospitals."),
    "d10": ("Vaccines", "Measles vaccination prevents outbreaks and saves children's lives."),
    "d11": ("Sugar", "Sugary drinks increase the risk of type 2 diabetes and obesity."),
    "d12": ("Statins", "Statins lower cholesterol and reduce heart attacks in patients at risk."),
}
DOCUMENTS = {doc_id: (title, f"{text} A cohort study.") for doc_id, (title, text) in _DOCUMENTS.items()}

QUERIES = {
    "q1": "does vitamin D deficiency cause bone fractures study",
    "q2": "smoking causes lung cancer study",
    "q3": "exercise lowers blood pressure study",
    "q4": "sleep and obesity study",
    "q5": "antibiotic resistance in hospitals study",
    "q6": "sugary drinks and diabetes study",
    "q7": "statins reduce heart attacks study",
    "q8": "vaccination prevents measles study",
}

TRAIN_QRELS = [
    ("q1", "d1", 1),
    ("q1", "d2", 1),
    ("q2", "d3", 1),
    ("q3", "d5", 1),
    ("q4", "d7", 1),
    ("q5", "d9", 1),
    ("q6", "d11", 1),
]
TEST_QRELS = [("q7", "d12", 1), ("q8", "d10", 1), ("q3", "d6", 1)]


def write_beir(folder: Path, documents=DOCUMENTS, train=TRAIN_QRELS, test=TEST_QRELS) -> Path:
    """corpus.jsonl, queries.jsonl, qrels/train.tsv and qrels/test.tsv in BEIR layout."""
    return write_beir_folder(folder, documents, QUERIES, {"train": train, "test": test})


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny model gains nothing from threads, and intra-op threads on a busy machine cost 100x (spinning
    OpenMP workers); restored afterwards so that tests elsewhere keep their thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random BERT with the bundled MiniLM tokenizer, saved as a plain Hugging Face folder."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def make_encoder(model_dir: Path, **overrides) -> BiEncoder:
    """The tiny model as the harness's encoder, fp32 on CPU with short maximum lengths."""
    settings = dict(model=str(model_dir), precision="fp32", device="cpu", max_doc_length=32, max_query_length=16)
    settings.update(overrides)
    return BiEncoder(EncoderConfig(**settings))


@pytest.fixture
def tiny_encoder(tiny_model_dir) -> BiEncoder:
    """A fresh encoder (tests train it in place), same initial weights every time."""
    return make_encoder(tiny_model_dir)


@pytest.fixture
def tiny_beir(tmp_path, monkeypatch) -> Path:
    """A tiny BEIR folder; ir_datasets writes its docstore under a private IR_DATASETS_HOME."""
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "ir_datasets_home"))
    return write_beir(tmp_path / "tiny-beir")
