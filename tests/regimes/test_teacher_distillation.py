"""The teacher-distillation regime: Margin-MSE against hand-worked values, every teacher kind on a tiny BEIR
folder, the regime's teacher-scoring phase and its cache, and how the regime is built from the command line.

Margin-MSE fixture (batch 2, dim 2, dot product a @ b.T):

    q_1 = (1, 0)   d+_1 = (3, 4)   d-_1 = (0, 1)
    q_2 = (0, 2)   d+_2 = (0, 1)   d-_2 = (4, 3)

    sim(q, d+) = [[3, 0], [8, 2]]      sim(q, d-) = [[0, 4], [2, 6]]
    student margins: 3 - 0 = 3,  2 - 6 = -4
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertForSequenceClassification

from benchmark.common.errors import UsageError
from benchmark.data.bm25 import BM25Index
from benchmark.data.collections import training_collection
from benchmark.data.triples import Triple
from benchmark.encoder import BiEncoder, EncoderConfig
from benchmark.evaluation import pairwise_accuracy as pairwise
from benchmark.measurement.phases import Meter
from benchmark.training.context import RegimeContext
from regimes.base import REGISTRY, TripleEmbeddings
from regimes.teacher_distillation import MarginMSELoss, TeacherDistillation
from regimes.teachers import (
    BiEncoderTeacher,
    BM25Teacher,
    CrossEncoderTeacher,
    EnsembleTeacher,
    ScoresFileTeacher,
    TeacherInputs,
    parse_teacher,
)
from tests.tiny import save_tiny_bert, write_beir_folder, write_score_file

# --- Margin-MSE by hand -----------------------------------------------------------------------------------


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise dot product."""
    return a @ b.T


def embeddings(grad: bool = False) -> TripleEmbeddings:
    """The fixture of the module docstring, in float64 so that hand arithmetic compares tightly."""

    def leaf(rows):
        return torch.tensor(rows, dtype=torch.float64, requires_grad=grad)

    return TripleEmbeddings(
        queries=leaf([[1.0, 0.0], [0.0, 2.0]]),
        positives=leaf([[3.0, 4.0], [0.0, 1.0]]),
        negatives=leaf([[0.0, 1.0], [4.0, 3.0]]),
        similarity=dot,
    )


TEACHER_MARGINS = torch.tensor([1.0, -2.0], dtype=torch.float64)
# Columns [d+_1, d+_2, d-_1, d-_2]; a query's own positive and own negative hold 100, which must be ignored.
TEACHER_IN_BATCH = torch.tensor([[100.0, 2.0, 100.0, 1.0], [-5.0, 100.0, 1.0, 100.0]], dtype=torch.float64)
HAND_PAIR = ((3 - 1.0) ** 2 + (-4 - -2.0) ** 2) / 2  # 4.0
HAND_IN_BATCH = (
    ((3 - 0) - 2.0) ** 2  # q_1 vs d+_2: 1
    + ((3 - 4) - 1.0) ** 2  # q_1 vs d-_2: 4
    + ((2 - 8) - -5.0) ** 2  # q_2 vs d+_1: 1
    + ((2 - 2) - 1.0) ** 2  # q_2 vs d-_1: 1
) / 4  # 1.75


def test_fixture_similarities():
    """The hand values rest on these similarity tables; check them once."""
    e = embeddings()
    torch.testing.assert_close(dot(e.queries, e.positives), torch.tensor([[3.0, 0.0], [8.0, 2.0]], dtype=torch.float64))
    torch.testing.assert_close(dot(e.queries, e.negatives), torch.tensor([[0.0, 4.0], [2.0, 6.0]], dtype=torch.float64))


def test_margin_mse_pair_term_by_hand():
    """Without the in-batch term the loss is the mean squared error of the two margins."""
    loss = MarginMSELoss()(embeddings(), TEACHER_MARGINS)
    assert loss.item() == pytest.approx(HAND_PAIR)
    assert HAND_PAIR == pytest.approx(4.0)


def test_margin_mse_in_batch_term_by_hand():
    """The in-batch term covers only the other triples' documents, weighted by in_batch_weight."""
    loss = MarginMSELoss(in_batch_weight=0.5)(embeddings(), TEACHER_MARGINS, TEACHER_IN_BATCH)
    assert HAND_IN_BATCH == pytest.approx(1.75)
    assert loss.item() == pytest.approx(HAND_PAIR + 0.5 * HAND_IN_BATCH)  # 4.875


def test_margin_mse_in_batch_needs_its_margins():
    """Asking for the in-batch term without its teacher margins is a programming error, not a silent zero."""
    with pytest.raises(ValueError, match="in-batch"):
        MarginMSELoss(in_batch_weight=0.5)(embeddings(), TEACHER_MARGINS)


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_margin_mse_gradient_reaches_every_embedding(weight):
    """Queries, positives and negatives all get a gradient, so the whole encoder learns."""
    e = embeddings(grad=True)
    MarginMSELoss(weight)(e, TEACHER_MARGINS, TEACHER_IN_BATCH).backward()
    for tensor in (e.queries, e.positives, e.negatives):
        assert tensor.grad is not None
        assert torch.all(tensor.grad.abs().sum(dim=1) > 0)


# --- a tiny BEIR folder and tiny models ---------------------------------------------------------------------

DOCUMENTS = {
    "d1": ("Vitamin D", "Vitamin D deficiency is linked to bone fractures."),
    "d2": ("Calcium", "Calcium supplements and vitamin intake reduce bone loss."),
    "d3": ("Smoking", "Smoking tobacco causes lung cancer."),
    "d4": ("Air pollution", "Fine particulate air pollution harms breathing."),
    "d5": ("Exercise", "Aerobic exercise lowers blood pressure."),
    "d6": ("Salt", "High salt diets raise blood pressure."),
    "d7": ("Sleep", "Short sleep is associated with obesity."),
    "d8": ("Coffee", "Moderate coffee drinking is harmless."),
    "d9": ("Antibiotics", "Overuse of antibiotics drives bacterial resistance."),
    "d10": ("Vaccines", "Measles vaccination prevents outbreaks."),
}
QUERIES = {
    "q1": "vitamin deficiency fractures",
    "q2": "smoking lung cancer",
    "q3": "exercise blood pressure",
    "q4": "sleep obesity",
    "q5": "antibiotic resistance",
}
TRAIN_QRELS = [("q1", "d1"), ("q2", "d3"), ("q3", "d5"), ("q4", "d7"), ("q5", "d9")]
TRIPLES = [
    Triple("q1", "d1", "d2"),
    Triple("q1", "d1", "d8"),
    Triple("q2", "d3", "d4"),
    Triple("q3", "d5", "d6"),
    Triple("q4", "d7", "d8"),
]
# Covers triples 0, 2 and 3; triple 1 lacks (q1, d8) and triple 4 lacks both of its pairs.
SCORES = [(9.0, 3.0, "q1", "d1", "d2"), (7.5, -1.5, "q2", "d3", "d4"), (2.0, 4.0, "q3", "d5", "d6")]
SCORED = [TRIPLES[0], TRIPLES[2], TRIPLES[3]]


def write_beir(folder: Path) -> Path:
    """corpus.jsonl, queries.jsonl and qrels/train.tsv (with its header) in BEIR layout."""
    return write_beir_folder(folder, DOCUMENTS, QUERIES, {"train": TRAIN_QRELS})


def write_scores(path: Path, rows=SCORES) -> Path:
    """A score file: score_pos, score_neg, qid, pid_pos, pid_neg, tab-separated."""
    return write_score_file(path, rows)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random BERT with the bundled MiniLM tokenizer (the student's and the bi-encoder teacher's)."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tiny_cross_encoder_dir(tmp_path_factory) -> Path:
    """A tiny random BertForSequenceClassification with one label: a cross-encoder's shape."""
    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    return save_tiny_bert(folder, BertForSequenceClassification, seed=4321, num_labels=1)


@pytest.fixture
def config(tiny_model_dir) -> EncoderConfig:
    return EncoderConfig(
        model=str(tiny_model_dir), precision="fp32", device="cpu", max_query_length=16, max_doc_length=32
    )


@pytest.fixture
def collection(tmp_path, monkeypatch):
    """The tiny folder's training split; ir_datasets writes its docstore under a private IR_DATASETS_HOME."""
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "ir_datasets_home"))
    return training_collection(str(write_beir(tmp_path / "tiny-beir")))


@pytest.fixture
def inputs(collection, tmp_path, config) -> TeacherInputs:
    return TeacherInputs(collection, tmp_path / "cache", config)


@pytest.fixture
def built_inputs(inputs) -> TeacherInputs:
    """Inputs whose cache already holds the BM25 index."""
    BM25Index(inputs.collection, inputs.cache_dir).build()
    return inputs


@pytest.fixture
def scores_file(tmp_path) -> Path:
    return write_scores(tmp_path / "scores.tsv")


def context_for(
    collection, config, tmp_path, meter=None, triples=TRIPLES, encoder=None, cache_dir=None
) -> RegimeContext:
    """A budget of ``triples`` out of all of TRIPLES (the training triples)."""
    return RegimeContext(
        label="teacher-distillation",
        cell="c",
        collection=collection,
        triples=list(triples),
        encoder_config=config,
        meter=meter or Meter(torch.device("cpu"), energy=False),
        cache_dir=cache_dir or tmp_path / "cache",
        seed=0,
        batch_size=2,
        encoder=encoder,
        training_triples=TRIPLES,
    )


def all_pairs(triples=TRIPLES) -> list[tuple[str, str]]:
    return sorted({(t.query_id, d) for t in triples for d in (t.positive_id, t.negative_id)})


# --- each teacher kind --------------------------------------------------------------------------------------


def test_cross_encoder_scores_are_the_models_logits(tiny_cross_encoder_dir, inputs, config):
    """Each pair's score is the one logit the model gives that (query, document) pair on its own."""
    teacher = parse_teacher(f"cross-encoder:{tiny_cross_encoder_dir}")
    assert isinstance(teacher, CrossEncoderTeacher)
    teacher.load(config)
    pairs = all_pairs()
    scores = teacher.score_pairs(pairs, inputs)
    assert set(scores) == set(pairs)
    tokenizer = AutoTokenizer.from_pretrained(tiny_cross_encoder_dir)
    model = BertForSequenceClassification.from_pretrained(tiny_cross_encoder_dir).eval()
    for (query_id, doc_id), score in scores.items():
        assert isinstance(score, float)
        title, text = DOCUMENTS[doc_id]
        batch = tokenizer(
            QUERIES[query_id], f"{title} {text}", truncation="only_second", max_length=16 + 32, return_tensors="pt"
        )
        with torch.inference_mode():
            expected = model(**batch).logits[0, 0].item()
        assert score == pytest.approx(expected, abs=1e-4)


def test_bi_encoder_scores_are_dot_products_of_its_embeddings(tiny_model_dir, inputs, config):
    """Each pair's score is the dot product of the frozen encoder's query and document embeddings."""
    teacher = parse_teacher(f"bi-encoder:{tiny_model_dir}")
    assert isinstance(teacher, BiEncoderTeacher)
    teacher.load(config)
    pairs = all_pairs()
    scores = teacher.score_pairs(pairs, inputs)
    assert set(scores) == set(pairs)
    encoder = BiEncoder(config)
    for (query_id, doc_id), score in scores.items():
        title, text = DOCUMENTS[doc_id]
        query = encoder.encode([QUERIES[query_id]], "query")[0]
        doc = encoder.encode([f"{title} {text}"], "doc")[0]
        assert isinstance(score, float)
        # encoded in other batches than the teacher's: OpenVINO's bf16 kernels differ with the batch's shape
        tolerance = 1e-5 if encoder.engine == "torch" else 2e-3
        assert score == pytest.approx(float(query @ doc), abs=tolerance)


def test_bm25_prefers_the_document_with_the_query_words(built_inputs):
    """q1's words are all in d1, one is in d2, none in d8: BM25 orders them so; scores are positive floats."""
    teacher = parse_teacher("bm25")
    assert isinstance(teacher, BM25Teacher)
    teacher.load(built_inputs.encoder_config)
    pairs = all_pairs()
    scores = teacher.score_pairs(pairs, built_inputs)
    assert set(scores) == set(pairs)
    assert all(isinstance(s, float) and s >= 0 for s in scores.values())
    assert scores[("q1", "d1")] > scores[("q1", "d2")]
    assert scores[("q1", "d1")] > scores[("q1", "d8")]
    assert scores[("q3", "d5")] > scores[("q3", "d6")]


def test_bm25_document_without_query_words_scores_below_the_only_match(built_inputs):
    """q2's words are only in d3 and none is in d4: d3 must score above d4, or the teacher margin is 0."""
    scores = parse_teacher("bm25").score_pairs([("q2", "d3"), ("q2", "d4")], built_inputs)
    assert scores[("q2", "d3")] > 0
    assert scores[("q2", "d3")] > scores[("q2", "d4")]


def test_bm25_teacher_on_a_fresh_cache(inputs):
    """The bm25 teacher builds the index it needs when the cache has none yet."""
    scores = parse_teacher("bm25").score_pairs([("q1", "d1"), ("q1", "d2")], inputs)
    assert scores[("q1", "d1")] > scores[("q1", "d2")] > 0


def test_scores_file_gives_only_the_pairs_it_has(scores_file, inputs, config):
    """A score file scores the pairs its lines name, by ids, and leaves the others out."""
    teacher = parse_teacher(f"scores:{scores_file}")
    assert isinstance(teacher, ScoresFileTeacher)
    teacher.load(config)
    scores = teacher.score_pairs(all_pairs(), inputs)
    assert scores == {
        ("q1", "d1"): 9.0,
        ("q1", "d2"): 3.0,
        ("q2", "d3"): 7.5,
        ("q2", "d4"): -1.5,
        ("q3", "d5"): 2.0,
        ("q3", "d6"): 4.0,
    }


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("9.0\t3.0\tq1\td1\td2\n2.0\t4.0\tq3\td5\n", 2),  # four columns
        ("high\t3.0\tq1\td1\td2\n", 1),  # a score that is not a number
        ("9.0\t3.0\tq1\td1\td2\textra\n", 1),  # six columns
    ],
)
def test_scores_file_in_the_wrong_layout_names_file_and_line(tmp_path, config, text, line):
    """A malformed line is a UsageError naming the file and the line, raised when the teacher loads."""
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        parse_teacher(f"scores:{path}").load(config)
    assert str(path) in str(caught.value)
    assert f"line {line}" in str(caught.value)


def test_scores_file_with_a_nan_score_is_refused(tmp_path, config):
    """'nan' is not a usable teacher score: loading should name the file and line."""
    path = write_scores(tmp_path / "nan.tsv", [(9.0, "nan", "q1", "d1", "d2")])
    with pytest.raises(UsageError, match="line 1"):
        parse_teacher(f"scores:{path}").load(config)


def test_missing_scores_file_is_a_usage_error(tmp_path, config):
    """A score file that is not there fails at load, before any training, and names the path."""
    path = tmp_path / "absent.tsv"
    with pytest.raises(UsageError, match="absent.tsv"):
        parse_teacher(f"scores:{path}").load(config)


def test_ensemble_is_the_mean_of_standardised_members_on_pairs_all_score(scores_file, built_inputs, config):
    """bm25 + a score file: each member standardised by its mean and deviation over the reference pairs, averaged,
    only where both score."""
    reference = [("q1", "d1"), ("q1", "d2"), ("q2", "d3"), ("q2", "d4")]
    pairs = [("q1", "d1"), ("q1", "d2"), ("q1", "d8"), ("q3", "d5"), ("q3", "d6")]
    inputs = built_inputs
    bm25 = BM25Teacher("").score_pairs(sorted(set(reference) | set(pairs)), inputs)
    bm25_ref = [bm25[p] for p in reference]
    bm25_mean, bm25_std = sum(bm25_ref) / 4, float(torch.tensor(bm25_ref, dtype=torch.float64).std(correction=0))
    file_mean = (9.0 + 3.0 + 7.5 - 1.5) / 4  # 4.5
    file_std = ((4.5**2 + 1.5**2 + 3.0**2 + 6.0**2) / 4) ** 0.5

    teacher = EnsembleTeacher(f"bm25+scores:{scores_file}")
    assert [m.kind for m in teacher.members] == ["bm25", "scores"]
    teacher.load(config)
    teacher.fit([{p: bm25[p] for p in reference}, {p: teacher.members[1].pairs[p] for p in reference}])
    fused = teacher.score_pairs(pairs, inputs)

    def expected(pair, file_score):
        return ((bm25[pair] - bm25_mean) / bm25_std + (file_score - file_mean) / file_std) / 2

    assert fused == pytest.approx(
        {
            ("q1", "d1"): expected(("q1", "d1"), 9.0),
            ("q1", "d2"): expected(("q1", "d2"), 3.0),
            ("q3", "d5"): expected(("q3", "d5"), 2.0),
            ("q3", "d6"): expected(("q3", "d6"), 4.0),
        }
    )
    assert ("q1", "d8") not in fused  # the file has no score for it


def test_unfitted_ensemble_refuses_to_fuse(built_inputs, config, tiny_model_dir):
    """Without maps fitted on the training pairs there is no budget-independent scale: a programming error."""
    teacher = EnsembleTeacher(f"bm25+bi-encoder:{tiny_model_dir}")
    teacher.load(config)
    with pytest.raises(RuntimeError, match="fit"):
        teacher.score_pairs([("q1", "d1")], built_inputs)


# --- a pair's score does not depend on the budget --------------------------------------------------------------

SMALL_BUDGET = 0.135


def teacher_specs(scores_file, tiny_model_dir, tiny_cross_encoder_dir) -> dict[str, str]:
    return {
        "cross-encoder": f"cross-encoder:{tiny_cross_encoder_dir}",
        "bi-encoder": f"bi-encoder:{tiny_model_dir}",
        "bm25": "bm25",
        "scores": f"scores:{scores_file}",
        "ensemble": f"ensemble:bm25+bi-encoder:{tiny_model_dir}",
        "ensemble with a file": f"ensemble:bm25+scores:{scores_file}",
    }


@pytest.mark.parametrize("kind", ["cross-encoder", "bi-encoder", "bm25", "scores", "ensemble", "ensemble with a file"])
@pytest.mark.parametrize("teacher_scale", ["auto", "1"])
def test_a_pairs_score_is_the_same_at_every_fraction(
    kind, teacher_scale, scores_file, collection, config, tmp_path, tiny_model_dir, tiny_cross_encoder_dir
):
    """The same (query, document) pair gets the same teacher score, and the run the same scale, with the 0.135
    budget (one triple, hence one document per query besides the positive) and with the full budget."""
    spec = teacher_specs(scores_file, tiny_model_dir, tiny_cross_encoder_dir)[kind]
    encoder = BiEncoder(config)
    prepared = {}
    for fraction in (SMALL_BUDGET, 1.0):
        budget = TRIPLES[: math.ceil(fraction * len(TRIPLES))]
        regime = TeacherDistillation.from_strings({"teacher": spec, "teacher_scale": teacher_scale})
        cache = tmp_path / f"cache-{fraction}"  # a fresh cache: nothing is shared between the two but the data
        regime.prepare(context_for(collection, config, tmp_path, triples=budget, encoder=encoder, cache_dir=cache))
        prepared[fraction] = regime
    small, full = prepared[SMALL_BUDGET], prepared[1.0]
    assert len(small.kept) < len(full.kept)
    shared = [(t.query_id, d) for t in small.kept for d in (t.positive_id, t.negative_id)]
    assert shared
    for pair in shared:
        assert small.pair_scores[pair] == pytest.approx(full.pair_scores[pair], rel=1e-6, abs=1e-6), pair
    assert small.scale == pytest.approx(full.scale, rel=1e-6)
    assert small.notes["teacher_scale"] == pytest.approx(full.notes["teacher_scale"], rel=1e-6)


def test_in_batch_pairs_share_the_scale_of_a_querys_own_pairs(collection, config, tmp_path, tiny_model_dir):
    """An in-batch pair (q_i, d_j) gets the score it gets when it is a query's own pair: scoring it with other
    pairs, or alone, changes nothing (per-query normalisation over the scored pairs would shift it)."""
    spec = f"ensemble:bm25+bi-encoder:{tiny_model_dir}"
    with_in_batch = TeacherDistillation(teacher=spec, in_batch_weight=0.5, teacher_scale=1.0)
    with_in_batch.prepare(context_for(collection, config, tmp_path))
    in_batch_pairs = set(with_in_batch.pair_scores) - set(all_pairs())
    assert in_batch_pairs
    for in_batch_pair in sorted(in_batch_pairs):
        query, doc = in_batch_pair
        alone = TeacherDistillation(teacher=spec, teacher_scale=1.0)
        alone.prepare(context_for(collection, config, tmp_path, triples=[Triple(query, doc, doc)]))
        assert alone.pair_scores[in_batch_pair] == pytest.approx(with_in_batch.pair_scores[in_batch_pair], abs=1e-5)


# --- the teacher's scale ---------------------------------------------------------------------------------------


def test_teacher_scale_multiplies_the_margins_and_is_recorded(scores_file, collection, config, tmp_path):
    """teacher_scale=0.25: loss() is Margin-MSE against a quarter of the file's margins; notes record 0.25."""
    regime = TeacherDistillation(teacher=f"scores:{scores_file}", teacher_scale=0.25)
    regime.prepare(context_for(collection, config, tmp_path))
    assert regime.notes["teacher_scale"] == 0.25
    batch = [TRIPLES[0], TRIPLES[3]]  # teacher margins 9 - 3 = 6 and 2 - 4 = -2
    expected = MarginMSELoss()(embeddings(), torch.tensor([0.25 * 6.0, 0.25 * -2.0], dtype=torch.float64))
    assert regime.loss(embeddings(), batch).item() == pytest.approx(expected.item())
    unscaled = MarginMSELoss()(embeddings(), torch.tensor([6.0, -2.0], dtype=torch.float64))
    assert expected.item() != pytest.approx(unscaled.item())


def test_auto_scale_is_the_rms_ratio_on_all_training_triples(scores_file, collection, config, tmp_path):
    """teacher_scale=auto: sqrt(mean(student margin^2) / mean(teacher margin^2)) over every scored training
    triple (not only the budget's), the student being the initial encoder; its encoding is a charged phase."""
    encoder = BiEncoder(config)
    context = context_for(collection, config, tmp_path, triples=TRIPLES[:1], encoder=encoder)
    regime = TeacherDistillation(teacher=f"scores:{scores_file}")
    regime.prepare(context)
    student = pairwise.encoder_margins(encoder, collection, SCORED)
    teacher = [9.0 - 3.0, 7.5 - -1.5, 2.0 - 4.0]
    hand = (sum(m * m for m in student) / 3) ** 0.5 / (sum(m * m for m in teacher) / 3) ** 0.5
    assert regime.scale == pytest.approx(hand, rel=1e-5)
    assert regime.notes["teacher_scale"] == regime.scale
    phases = {r.phase: r for r in context.meter.records}
    assert {"teacher-calibration", "teacher-scale"} <= set(phases)
    assert all(r.charged_to == "teacher-distillation" and r.cell == "c" for r in context.meter.records)
    assert phases["teacher-scale"].count == len(TRIPLES)


@pytest.mark.parametrize("text", ["0", "-1", "nan", "big"])
def test_bad_teacher_scale_is_refused(text):
    with pytest.raises(UsageError, match="teacher_scale"):
        TeacherDistillation.from_strings({"teacher": "bm25", "teacher_scale": text})


def test_dot_similarity_trains_with_margin_mse(scores_file, collection, tiny_model_dir, tmp_path):
    """--similarity dot: unnormalised embeddings, the auto scale fitted on dot margins, and a training step that
    lowers the regime's loss on its batch."""
    dot_config = EncoderConfig(
        model=str(tiny_model_dir),
        precision="fp32",
        device="cpu",
        max_query_length=16,
        max_doc_length=32,
        similarity="dot",
    )
    encoder = BiEncoder(dot_config)
    regime = TeacherDistillation(teacher=f"scores:{scores_file}")
    regime.prepare(context_for(collection, dot_config, tmp_path, encoder=encoder))
    student = pairwise.encoder_margins(encoder, collection, SCORED)
    teacher = [6.0, 9.0, -2.0]
    assert regime.scale == pytest.approx((sum(m * m for m in student) / sum(m * m for m in teacher)) ** 0.5, rel=1e-5)
    batch = SCORED

    def step_loss() -> torch.Tensor:
        e = TripleEmbeddings(
            queries=encoder.embed([collection.queries[t.query_id] for t in batch], "query"),
            positives=encoder.embed(collection.document_texts([t.positive_id for t in batch]), "doc"),
            negatives=encoder.embed(collection.document_texts([t.negative_id for t in batch]), "doc"),
            similarity=encoder.similarity,
        )
        assert not torch.allclose(e.queries.norm(dim=1), torch.ones(len(batch)))  # dot: not unit length
        return regime.loss(e, batch)

    optimiser = torch.optim.SGD(encoder.parameters(), lr=1e-3)
    encoder.eval()  # no dropout: the two losses differ by the step alone
    before = step_loss()
    before.backward()
    optimiser.step()
    with torch.no_grad():
        after = step_loss()
    assert torch.isfinite(before) and after.item() < before.item()


@pytest.mark.parametrize(
    "spec",
    [
        "oracle:x",
        "cross-encoder",
        "bi-encoder:",
        "scores:",
        "bm25:x",
        "ensemble:bm25",
        "ensemble:bm25+oracle:x",
        "ensemble:",
    ],
)
def test_parse_teacher_refuses_bad_specs(spec):
    """Unknown kinds, missing or extra arguments and one-member ensembles are usage errors."""
    with pytest.raises(UsageError):
        parse_teacher(spec)


def test_parse_teacher_kinds():
    """Each kind parses to its class and keeps its spec as typed."""
    assert isinstance(parse_teacher(" bm25 "), BM25Teacher)
    assert parse_teacher("bm25").spec == "bm25"
    assert parse_teacher("scores:/x/y.tsv").spec == "scores:/x/y.tsv"
    ensemble = parse_teacher("ensemble:bm25+bi-encoder:some/model")
    assert isinstance(ensemble, EnsembleTeacher)
    assert [type(m) for m in ensemble.members] == [BM25Teacher, BiEncoderTeacher]


# --- the regime ---------------------------------------------------------------------------------------------


def test_registered_under_its_name():
    """`--regimes teacher-distillation` finds this class."""
    assert REGISTRY["teacher-distillation"] is TeacherDistillation


def test_negative_in_batch_weight_is_refused():
    """A negative weight would reward wrong margins."""
    with pytest.raises(UsageError, match="in_batch_weight"):
        TeacherDistillation.from_strings({"in_batch_weight": "-1"})
    with pytest.raises(UsageError):
        TeacherDistillation.from_strings({"in_batch_weight": "lots"})


@pytest.mark.parametrize("teacher", ["scores:/nowhere.tsv", "ensemble:bm25+scores:/nowhere.tsv"])
def test_score_file_teacher_refuses_in_batch_term(teacher):
    """A score file has no scores for in-batch pairs, alone or inside an ensemble."""
    with pytest.raises(UsageError, match="in_batch_weight"):
        TeacherDistillation.from_strings({"teacher": teacher, "in_batch_weight": "0.5"})
    TeacherDistillation.from_strings({"teacher": teacher, "in_batch_weight": "0"})  # fine without it


def test_pairs_needed_cover_every_in_batch_pair():
    """With the in-batch term, every query is scored against every document of its batch."""
    regime = TeacherDistillation(teacher="bm25", in_batch_weight=0.5)
    pairs = set(regime.pairs_needed(TRIPLES[:4], 2))
    # batch 1: q1 with d1, d2, d8; batch 2: q2 and q3 each with d3, d4, d5, d6
    second = {(q, d) for q in ("q2", "q3") for d in ("d3", "d4", "d5", "d6")}
    expected = {("q1", d) for d in ("d1", "d2", "d8")} | second
    assert pairs == expected
    assert set(TeacherDistillation(teacher="bm25").pairs_needed(TRIPLES, 2)) == set(all_pairs())


def test_prepare_keeps_only_scored_triples_and_charges_the_scoring(scores_file, collection, config, tmp_path):
    """Unscored triples are dropped and counted; the scoring is a phase charged to the regime, cached for reuse."""
    meter = Meter(torch.device("cpu"), energy=False)
    context = context_for(collection, config, tmp_path, meter)
    regime = TeacherDistillation(teacher=f"scores:{scores_file}", teacher_scale=1.0)
    regime.prepare(context)
    assert regime.kept == SCORED
    assert regime.notes["teacher_unscored_triples_dropped"] == 2
    assert regime.notes["teacher"] == f"scores:{scores_file}"
    batches = [list(batch) for batch in regime.batches(TRIPLES, 2, 0)]
    assert batches == [SCORED[:2], SCORED[2:]]

    (first,) = meter.records
    assert first.phase == "teacher-scoring"
    assert first.charged_to == "teacher-distillation"
    assert first.cell == "c"
    assert first.count == len(all_pairs())
    assert not first.reused

    again = TeacherDistillation(teacher=f"scores:{scores_file}", teacher_scale=1.0)
    again.prepare(context)
    assert len(meter.records) == 2
    second = meter.records[1]
    assert second.phase == "teacher-scoring"
    assert second.reused
    assert second.charged_to == "teacher-distillation"
    assert second.wall_s == first.wall_s
    assert second.count == first.count
    assert again.pair_scores == regime.pair_scores
    assert again.kept == SCORED
    assert again.notes["teacher_unscored_triples_dropped"] == 2


def test_edited_score_file_is_not_served_from_the_cache(tmp_path, collection, config):
    """Scores come from the file as it is now, not as it was at the first run."""
    path = write_scores(tmp_path / "scores.tsv")
    context = context_for(collection, config, tmp_path)
    TeacherDistillation(teacher=f"scores:{path}", teacher_scale=1.0).prepare(context)
    write_scores(path, [(1.0, 0.0, q, p, n) for _, _, q, p, n in SCORES])
    regime = TeacherDistillation(teacher=f"scores:{path}", teacher_scale=1.0)
    regime.prepare(context)
    assert regime.pair_scores[("q1", "d1")] == 1.0


def test_prepare_with_no_scored_triple_is_a_usage_error(tmp_path, collection, config):
    """A score file whose ids match nothing would leave the regime with no data; say so."""
    path = write_scores(tmp_path / "other.tsv", [(1.0, 0.0, "qX", "dX", "dY")])
    with pytest.raises(UsageError, match="score file"):
        TeacherDistillation(teacher=f"scores:{path}", teacher_scale=1.0).prepare(
            context_for(collection, config, tmp_path)
        )


def test_loss_uses_the_cached_pair_scores(scores_file, collection, config, tmp_path):
    """loss() is Margin-MSE against the teacher margins of the batch's triples, read from the scores."""
    regime = TeacherDistillation(teacher=f"scores:{scores_file}", teacher_scale=1.0)
    regime.prepare(context_for(collection, config, tmp_path))
    batch = [TRIPLES[0], TRIPLES[3]]  # teacher margins 9 - 3 = 6 and 2 - 4 = -2
    expected = MarginMSELoss()(embeddings(), torch.tensor([6.0, -2.0], dtype=torch.float64))
    assert regime.loss(embeddings(), batch).item() == pytest.approx(expected.item())
    assert expected.item() == pytest.approx(((3 - 6.0) ** 2 + (-4 - -2.0) ** 2) / 2)


def test_loss_in_batch_margins_come_from_the_pair_scores():
    """With in_batch_weight, column j of query i's teacher margins is t(q_i, d+_i) - t(q_i, d_j)."""
    regime = TeacherDistillation(teacher="bm25", in_batch_weight=0.5)
    batch = [Triple("qa", "p1", "n1"), Triple("qb", "p2", "n2")]
    regime.pair_scores = {
        ("qa", "p1"): 5.0,
        ("qa", "p2"): 3.0,
        ("qa", "n1"): 4.0,
        ("qa", "n2"): 4.0,
        ("qb", "p1"): 7.0,
        ("qb", "p2"): 2.0,
        ("qb", "n1"): 1.0,
        ("qb", "n2"): 4.0,
    }
    # pair margins: 5 - 4 = 1, 2 - 4 = -2 (TEACHER_MARGINS); in-batch, columns [p1, p2, n1, n2]:
    # qa: 5 - [5, 3, 4, 4] = [0, 2, 1, 1]; qb: 2 - [7, 2, 1, 4] = [-5, 0, 1, -2]
    in_batch = torch.tensor([[0.0, 2.0, 1.0, 1.0], [-5.0, 0.0, 1.0, -2.0]], dtype=torch.float64)
    expected = MarginMSELoss(0.5)(embeddings(), TEACHER_MARGINS, in_batch).item()
    assert regime.loss(embeddings(), batch).item() == pytest.approx(expected)
    assert expected == pytest.approx(HAND_PAIR + 0.5 * HAND_IN_BATCH)  # the same off-diagonal margins
