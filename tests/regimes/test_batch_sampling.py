"""The batch-sampling regime: TAS-Balanced batch composition, in-batch InfoNCE by hand, the regime's parameters,
and an end-to-end preparation (clustering + teacher scoring) on a tiny BEIR folder with a tiny random BERT.

InfoNCE fixture (batch 2, dim 2, dot product a @ b.T); documents in the order [d+_1, d+_2, d-_1, d-_2]:

    q_1 = (1, 0)   d+_1 = (1, 1)   d-_1 = (2, 0)
    q_2 = (0, 1)   d+_2 = (0, 2)   d-_2 = (1, -1)

    logits q_1: [1, 0, 2, 1]  (target column 0)
    logits q_2: [1, 2, 0, -1] (target column 1)
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from benchmark.common.errors import UsageError
from benchmark.data.collections import training_collection
from benchmark.data.triples import Triple
from benchmark.encoder import BiEncoder, EncoderConfig
from benchmark.measurement.phases import Meter
from benchmark.training.context import RegimeContext
from regimes.base import REGISTRY, Regime, TripleEmbeddings
from regimes.batch_sampling import (
    PAPER_QUERIES_PER_CLUSTER,
    BatchSampling,
    auto_clusters,
    balanced_batches,
    in_batch_info_nce,
)
from regimes.teacher_distillation import MarginMSELoss
from regimes.teachers import parse_teacher, teacher_scores
from tests.tiny import save_tiny_bert, write_beir_folder, write_score_file


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny model gains nothing from threads and the machine is shared; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- balanced_batches on synthetic triples ------------------------------------------------------------------


def synthetic(spec: dict[int, dict[int, int]], queries_per_cluster: int = 2):
    """Triples for {cluster: {bin: how many per query}}: every query of a cluster gets that many triples in each
    bin; ids name cluster, query and bin; returns (triples, cluster_of, bin_of)."""
    triples, cluster_of, bin_of = [], {}, {}
    for cluster, bins in spec.items():
        for q in range(queries_per_cluster):
            query_id = f"c{cluster}q{q}"
            cluster_of[query_id] = cluster
            for margin_bin, count in bins.items():
                for i in range(count):
                    name = f"{query_id}b{margin_bin}"
                    triple = Triple(query_id, f"{name}p{i}", f"{name}n{i}")
                    triples.append(triple)
                    bin_of[triple] = margin_bin
    return triples, cluster_of, bin_of


def check_draw(batches, triples, cluster_of, batch_size):
    """The budget's size exactly, in ceil(n / batch_size) batches, the last one smaller; only pool triples; one
    cluster a batch."""
    assert sum(len(batch) for batch in batches) == len(triples)
    assert len(batches) == math.ceil(len(triples) / batch_size)
    assert all(len(batch) == batch_size for batch in batches[:-1])
    assert 0 < len(batches[-1]) <= batch_size
    pool = set(triples)
    for batch in batches:
        assert all(t in pool for t in batch)
        assert len({cluster_of[t.query_id] for t in batch}) == 1


@pytest.mark.parametrize(("size", "batch_size"), [(30, 4), (31, 4), (32, 32), (7, 32), (1, 1)])
def test_draw_consumes_exactly_the_budget(size, batch_size):
    """Examples consumed = len(pool) = ceil(f x N), whatever the pool and batch size."""
    triples, cluster_of, bin_of = synthetic({0: {0: 3, 1: 2}, 1: {4: 5}, 2: {2: 1}}, queries_per_cluster=3)
    triples = triples[:size]
    batches = balanced_batches(triples, cluster_of, bin_of, batch_size, seed=0)
    check_draw(batches, triples, cluster_of, batch_size)


def test_draw_balances_bins_within_each_query():
    """Per query, a non-empty bin is drawn uniformly, then a pair from it: bins holding 90, 9 and 1 of a query's
    pairs (and one empty bin) are each drawn about a third of the time. A sampler uniform over pairs, or over
    global bins, would give 0.90 / 0.09 / 0.01, and fail the tolerance by far."""
    triples, cluster_of, bin_of = synthetic({0: {0: 90, 3: 9, 7: 1}}, queries_per_cluster=4)
    batches = balanced_batches(triples * 30, cluster_of, bin_of, batch_size=8, seed=11)  # 12000 draws
    per_query: dict[str, Counter] = defaultdict(Counter)
    for batch in batches:
        for t in batch:
            per_query[t.query_id][bin_of[t]] += 1
    assert len(per_query) == 4
    for counts in per_query.values():
        total = sum(counts.values())
        assert set(counts) == {0, 3, 7}  # never the empty bin
        for b in (0, 3, 7):
            assert abs(counts[b] / total - 1 / 3) < 0.03, counts


def test_draw_is_uniform_over_pairs_within_a_bin():
    """Within a bin the pair is uniform: the 9 pairs of bin 3 are drawn about equally often."""
    triples, cluster_of, bin_of = synthetic({0: {0: 1, 3: 9}}, queries_per_cluster=1)
    batches = balanced_batches(triples * 900, cluster_of, bin_of, batch_size=1, seed=2)
    counts = Counter(t for batch in batches for t in batch if bin_of[t] == 3)
    assert len(counts) == 9
    expected = sum(counts.values()) / 9
    assert all(abs(n - expected) < 0.15 * expected for n in counts.values()), counts


def test_draw_takes_distinct_queries_from_one_random_cluster():
    """A batch holds distinct queries when its cluster has enough, all from one cluster; clusters are drawn
    uniformly (not in proportion to their triples: cluster 1 holds 10x the triples of cluster 0)."""
    triples, cluster_of, bin_of = synthetic({0: {0: 1}, 1: {0: 10}}, queries_per_cluster=6)
    batches = balanced_batches(triples * 20, cluster_of, bin_of, batch_size=6, seed=5)
    check_draw(batches, triples * 20, cluster_of, 6)
    for batch in batches:
        assert len({t.query_id for t in batch}) == len(batch)
    share = Counter(cluster_of[b[0].query_id] for b in batches)
    assert abs(share[0] / len(batches) - 0.5) < 0.1, share


def test_small_cluster_repeats_its_queries_evenly():
    """A cluster with fewer queries than the batch fills it with its queries in rounds: 3 queries, batch 7 ->
    counts (3, 2, 2) in some order, one cluster still."""
    triples, cluster_of, bin_of = synthetic({0: {0: 5}}, queries_per_cluster=3)
    batches = balanced_batches(triples * 7, cluster_of, bin_of, batch_size=7, seed=0)
    for batch in batches:
        assert sorted(Counter(t.query_id for t in batch).values()) == [2, 2, 3]


def test_draw_deterministic_for_a_seed():
    """Same seed, same batches in the same order; another seed, other batches (the runs are reproducible)."""
    triples, cluster_of, bin_of = synthetic({c: {b: 3 for b in range(3)} for c in range(3)})
    first = balanced_batches(triples, cluster_of, bin_of, 4, seed=0)
    assert balanced_batches(list(triples), dict(cluster_of), dict(bin_of), 4, seed=0) == first
    assert balanced_batches(triples, cluster_of, bin_of, 4, seed=1) != first


def test_draw_does_not_mutate_its_inputs():
    """The budget list and the maps are the caller's; drawing must not reorder or consume them."""
    triples, cluster_of, bin_of = synthetic({0: {0: 4, 3: 4, 7: 2}, 1: {1: 2, 5: 2}})
    before = (list(triples), dict(cluster_of), dict(bin_of))
    balanced_batches(triples, cluster_of, bin_of, 6, seed=0)
    assert (triples, cluster_of, bin_of) == before


def test_margin_bins_are_per_query():
    """Each query's margins are binned over its own range: two queries on scales 1 and 100 both fill bins 0..9,
    and each query's extremes are its bins 0 and 9. Global bins would put all of query a in bin 0."""
    regime = BatchSampling(teacher="bm25")
    margins = {Triple("a", f"p{i}", f"n{i}"): i * 0.1 for i in range(10)}
    margins.update({Triple("b", f"p{i}", f"n{i}"): 100.0 * i for i in range(10)})
    margins[Triple("c", "p", "n")] = 5.0  # one pair: one bin
    margins.update({Triple("d", f"p{i}", f"n{i}"): 2.0 for i in range(3)})  # all equal: one bin
    bins = regime.margin_bins(margins)
    for query in ("a", "b"):
        assert sorted(b for t, b in bins.items() if t.query_id == query) == list(range(10))
    assert bins[Triple("c", "p", "n")] == 0
    assert {b for t, b in bins.items() if t.query_id == "d"} == {0}


def test_auto_clusters_use_the_papers_ratio_with_a_batch_floor():
    """TAS-B: 2K clusters for 400K queries (200 a cluster); at most queries / batch_size clusters; at least 1."""
    assert PAPER_QUERIES_PER_CLUSTER == 200
    assert auto_clusters(400_000, 32) == 2000
    assert auto_clusters(809, 32) == 4  # SciFact's training queries
    assert auto_clusters(100, 32) == 1
    assert auto_clusters(2000, 256) == 7  # the floor: 10 clusters would hold fewer than a batch of queries
    assert auto_clusters(3, 32) == 1


# --- in-batch InfoNCE by hand -------------------------------------------------------------------------------


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise dot product."""
    return a @ b.T


def info_nce_embeddings() -> TripleEmbeddings:
    """The fixture of the module docstring, in float64 so the hand arithmetic compares tightly."""
    return TripleEmbeddings(
        queries=torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64),
        positives=torch.tensor([[1.0, 1.0], [0.0, 2.0]], dtype=torch.float64),
        negatives=torch.tensor([[2.0, 0.0], [1.0, -1.0]], dtype=torch.float64),
        similarity=dot,
    )


def hand_info_nce(temperature: float) -> float:
    """Mean over the two queries of -logit(own positive) + log sum exp(all four logits), logits / temperature."""
    t = temperature
    loss_1 = -1 / t + math.log(math.exp(1 / t) + math.exp(0 / t) + math.exp(2 / t) + math.exp(1 / t))
    loss_2 = -2 / t + math.log(math.exp(1 / t) + math.exp(2 / t) + math.exp(0 / t) + math.exp(-1 / t))
    return (loss_1 + loss_2) / 2


def test_info_nce_fixture_logits():
    """The hand values rest on this logit table; check it once."""
    e = info_nce_embeddings()
    logits = dot(e.queries, torch.cat([e.positives, e.negatives]))
    torch.testing.assert_close(logits, torch.tensor([[1.0, 0.0, 2.0, 1.0], [1.0, 2.0, 0.0, -1.0]], dtype=torch.float64))


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_in_batch_info_nce_by_hand(temperature):
    """Cross-entropy over every positive and negative of the batch, target the query's own positive."""
    value = in_batch_info_nce(info_nce_embeddings(), temperature).item()
    assert value == pytest.approx(hand_info_nce(temperature), rel=1e-12)


def test_in_batch_info_nce_hand_numbers():
    """The by-hand values themselves, so a slip in hand_info_nce cannot hide (1.0334..., 1.1995...)."""
    assert hand_info_nce(1.0) == pytest.approx(
        ((-1 + math.log(2 * math.e + 1 + math.e**2)) + (-2 + math.log(math.e + math.e**2 + 1 + math.exp(-1)))) / 2
    )
    assert hand_info_nce(1.0) == pytest.approx(1.03336, abs=1e-4)
    assert hand_info_nce(0.5) == pytest.approx(1.19947, abs=1e-4)


def shared_positive_embeddings(rows: slice = slice(None)) -> TripleEmbeddings:
    """Two rows with the same positive document: q_1 = (1, 0), q_2 = (0, 1), d+ = (1, 1) for both,
    d-_1 = (2, 0), d-_2 = (1, -1). ``rows``: this process's rows, the documents are the whole batch's."""
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    positives = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    negatives = torch.tensor([[2.0, 0.0], [1.0, -1.0]], dtype=torch.float64)
    return TripleEmbeddings(
        queries=queries[rows],
        positives=positives[rows],
        negatives=negatives[rows],
        similarity=dot,
        all_positives=positives,
        all_negatives=negatives,
        offset=rows.start or 0,
    )


SHARED = [Triple("q1", "d", "n1"), Triple("q2", "d", "n2")]
# logits q_1: [1, 1, 2, 1] (column 1 is its own positive again: masked); q_2: [1, 1, 0, -1] (column 0 masked)
SHARED_LOSS_1 = -1 + math.log(math.e + math.e**2 + math.e)
SHARED_LOSS_2 = -1 + math.log(math.e + 1 + math.exp(-1))


def test_info_nce_does_not_count_a_copy_of_the_positive_as_a_negative():
    """Two rows sharing a positive: the other row's copy is masked out of each row's softmax (by hand). Without
    the batch's ids (no masking) the copy would count as a negative and the loss would be larger."""
    loss = in_batch_info_nce(shared_positive_embeddings(), 1.0, SHARED).item()
    assert loss == pytest.approx((SHARED_LOSS_1 + SHARED_LOSS_2) / 2, rel=1e-12)
    unmasked = in_batch_info_nce(shared_positive_embeddings(), 1.0).item()
    assert unmasked == pytest.approx(
        ((-1 + math.log(3 * math.e + math.e**2)) + (-1 + math.log(2 * math.e + 1 + math.exp(-1)))) / 2
    )
    assert loss < unmasked
    regime = BatchSampling(sampler="hard-negatives", temperature=1.0)
    assert regime.loss(shared_positive_embeddings(), SHARED).item() == pytest.approx(loss, rel=1e-12)


def test_info_nce_masks_on_one_process_of_several():
    """On several processes each holds some rows: the mask follows the row's place in the whole batch."""
    second = in_batch_info_nce(shared_positive_embeddings(slice(1, 2)), 1.0, SHARED).item()
    assert second == pytest.approx(SHARED_LOSS_2, rel=1e-12)
    first = in_batch_info_nce(shared_positive_embeddings(slice(0, 1)), 1.0, SHARED).item()
    assert first == pytest.approx(SHARED_LOSS_1, rel=1e-12)


def test_info_nce_masks_the_positive_as_another_rows_negative_and_same_query_positives():
    """Row 1's positive as row 2's negative, and row 3 = another positive of row 1's query: both relevant to
    q1, so masked for rows 1 and 3 (row 3's query is q1 too); row 2's query has no other positive."""
    from regimes.batch_sampling import relevant_elsewhere

    batch = [Triple("q1", "a", "x"), Triple("q2", "b", "a"), Triple("q1", "c", "y")]
    mask = relevant_elsewhere(batch, slice(None))
    # columns: positives a, b, c, then negatives x, a, y
    assert mask.tolist() == [
        [False, False, True, False, True, False],
        [False, False, False, False, False, False],
        [True, False, False, False, True, False],
    ]
    assert not relevant_elsewhere([Triple("q1", "a", "x"), Triple("q2", "b", "y")], slice(None)).any()


# --- the regime's plumbing ----------------------------------------------------------------------------------


def test_registered_under_its_name():
    """`--regimes batch-sampling` finds this class."""
    assert REGISTRY["batch-sampling"] is BatchSampling


def test_defaults():
    """The documented defaults: TAS-Balanced, TAS-B's in-batch weight 0.75, temperature 0.05, clusters auto."""
    regime = BatchSampling.from_strings({})
    assert regime.settings["sampler"] == "tas-balanced"
    assert regime.settings["in_batch_weight"] == 0.75
    assert regime.settings["temperature"] == 0.05
    assert regime.settings["clusters"] == "auto"
    assert regime.label == "batch-sampling"
    assert BatchSampling.from_strings({"clusters": "3"}).settings["clusters"] == 3


@pytest.mark.parametrize(
    "settings",
    [
        {"sampler": "x"},
        {"temperature": "0"},
        {"temperature": "-1"},
        {"in_batch_weight": "-1"},
        {"clusters": "0"},
        {"clusters": "many"},
        {"margin_bins": "0"},
        {"teacher": "oracle:x"},
        {"colour": "red"},
    ],
)
def test_bad_settings_are_usage_errors(settings):
    """Each nonsensical value is refused with a UsageError (a message and exit status 2, not a traceback)."""
    with pytest.raises(UsageError):
        BatchSampling.from_strings(settings)


def test_score_file_teacher_refuses_in_batch_term():
    """A score file has no scores for in-batch pairs: the default in_batch_weight (0.75) is refused with it."""
    with pytest.raises(UsageError, match="in_batch_weight"):
        BatchSampling.from_strings({"teacher": "scores:/nowhere.tsv"})
    BatchSampling.from_strings({"teacher": "scores:/nowhere.tsv", "in_batch_weight": "0"})
    BatchSampling.from_strings({"sampler": "hard-negatives", "teacher": "scores:/nowhere.tsv"})  # teacher unused


def test_ensemble_with_a_score_file_refuses_in_batch_term():
    """Same rule as teacher-distillation: a score file inside an ensemble cannot score in-batch pairs either."""
    with pytest.raises(UsageError, match="in_batch_weight"):
        BatchSampling.from_strings({"teacher": "ensemble:bm25+scores:/nowhere.tsv", "in_batch_weight": "0.75"})


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_hard_negatives_loss_is_in_batch_info_nce(temperature):
    """sampler=hard-negatives trains on in-batch InfoNCE at its temperature; the batch's ids do not matter."""
    regime = BatchSampling(sampler="hard-negatives", temperature=temperature)
    batch = [Triple("q1", "d1", "d2"), Triple("q2", "d3", "d4")]
    e = info_nce_embeddings()
    assert regime.loss(e, batch).item() == pytest.approx(in_batch_info_nce(e, temperature).item(), rel=1e-12)
    assert regime.loss(e, batch).item() == pytest.approx(hand_info_nce(temperature), rel=1e-12)


def test_hard_negatives_prepares_nothing_and_keeps_the_budget_order():
    """No clustering or scoring to charge; batches are the budget's own order, as for the base Regime."""
    triples = [Triple(f"q{i}", f"p{i}", f"n{i}") for i in range(10)]
    regime = BatchSampling(sampler="hard-negatives")
    meter = Meter(torch.device("cpu"), energy=False)
    regime.prepare(SimpleNamespace(meter=meter, triples=triples, encoder=None, label="batch-sampling", cell="c"))
    assert meter.records == []
    assert "negatives" in regime.notes
    for seed in (0, 1):
        batches = [list(b) for b in regime.batches(triples, 4, seed)]
        assert batches == [triples[0:4], triples[4:8], triples[8:10]]
        assert batches == [list(b) for b in Regime.batches(regime, triples, 4, seed)]
    assert regime.evaluation_systems(None) == {}


def test_tas_balanced_batches_need_prepare():
    """Without prepare() there is no plan; asking for batches is a programming error, not the budget order."""
    with pytest.raises(RuntimeError, match="prepare"):
        list(BatchSampling(teacher="bm25").batches([Triple("q", "p", "n")], 4, 0))


# --- end to end: prepare on a tiny BEIR folder --------------------------------------------------------------

# Every document and query shares the word "study", so BM25 scores every pair.
DOCUMENTS = {
    "d1": ("Vitamin D", "Vitamin D deficiency is linked to weaker bones and fractures. A cohort study."),
    "d2": ("Calcium intake", "Calcium supplements reduce bone loss in women. A cohort study."),
    "d3": ("Smoking and lungs", "Smoking tobacco causes lung cancer. A cohort study."),
    "d4": ("Air pollution", "Fine particulate air pollution increases lung disease. A cohort study."),
    "d5": ("Exercise", "Regular aerobic exercise lowers blood pressure. A cohort study."),
    "d6": ("Salt", "High salt diets raise blood pressure and stroke risk. A cohort study."),
    "d7": ("Sleep", "Short sleep duration is associated with obesity. A cohort study."),
    "d8": ("Coffee", "Moderate coffee consumption is not associated with heart disease. A cohort study."),
    "d9": ("Antibiotics", "Overuse of antibiotics drives bacterial resistance in hospitals. A cohort study."),
    "d10": ("Vaccines", "Measles vaccination prevents outbreaks. A cohort study."),
    "d11": ("Sugar", "Sugary drinks increase the risk of type 2 diabetes. A cohort study."),
    "d12": ("Statins", "Statins lower cholesterol and reduce heart attacks. A cohort study."),
}
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
    ("q1", "d1"),
    ("q2", "d3"),
    ("q3", "d5"),
    ("q4", "d7"),
    ("q5", "d9"),
    ("q6", "d11"),
    ("q7", "d12"),
    ("q8", "d10"),
]
NEGATIVES = {
    "q1": ("d2", "d8"),
    "q2": ("d4", "d6"),
    "q3": ("d6", "d8"),
    "q4": ("d8", "d11"),
    "q5": ("d10", "d3"),
    "q6": ("d7", "d12"),
    "q7": ("d8", "d5"),
    "q8": ("d9", "d1"),
}
TRIPLES = [Triple(q, p, n) for q, p in TRAIN_QRELS for n in NEGATIVES[q]]  # 16 triples, from the qrels by hand
# A distinct score per (query, document), so margins spread over several bins; the positive scores higher
# for most triples but not all (q3 / d6 and q5 / d10 beat the positive).
PAIR_SCORE = {(q, p): 10.0 + i for i, (q, p) in enumerate(TRAIN_QRELS)}
PAIR_SCORE.update({(t.query_id, t.negative_id): 1.0 + 0.7 * i for i, t in enumerate(TRIPLES)})
PAIR_SCORE[("q3", "d6")] = 20.0
PAIR_SCORE[("q5", "d10")] = 25.0


def write_beir(folder: Path) -> Path:
    """corpus.jsonl, queries.jsonl and qrels/train.tsv (with its header) in BEIR layout."""
    return write_beir_folder(folder, DOCUMENTS, QUERIES, {"train": TRAIN_QRELS})


def write_scores(path: Path, triples=TRIPLES) -> Path:
    """score_pos<TAB>score_neg<TAB>qid<TAB>pid_pos<TAB>pid_neg, one line per triple."""
    return write_score_file(
        path, [(PAIR_SCORE[(t.query_id, t.positive_id)], PAIR_SCORE[(t.query_id, t.negative_id)], *t) for t in triples]
    )


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random BERT with the bundled MiniLM tokenizer, saved as a plain Hugging Face folder."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def config(tiny_model_dir) -> EncoderConfig:
    return EncoderConfig(
        model=str(tiny_model_dir), precision="fp32", device="cpu", max_query_length=16, max_doc_length=32
    )


@pytest.fixture
def encoder(config) -> BiEncoder:
    return BiEncoder(config)


@pytest.fixture
def collection(tmp_path, monkeypatch):
    """The tiny folder's training split; ir_datasets writes its docstore under a private IR_DATASETS_HOME."""
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "ir_datasets_home"))
    return training_collection(str(write_beir(tmp_path / "tiny-beir")))


def context_for(collection, config, encoder, tmp_path, triples=TRIPLES, batch_size=4) -> RegimeContext:
    return RegimeContext(
        label="batch-sampling",
        cell="c",
        collection=collection,
        triples=list(triples),
        encoder_config=config,
        meter=Meter(torch.device("cpu"), energy=False),
        cache_dir=tmp_path / "cache",
        seed=0,
        batch_size=batch_size,
        encoder=encoder,
        training_triples=TRIPLES,
    )


def prepared(regime: BatchSampling, context: RegimeContext) -> dict[str, int]:
    """Run prepare and return the clustering the regime itself computed (its cluster_queries' result)."""
    captured: dict[str, int] = {}
    original = regime.cluster_queries

    def spy(ctx):
        captured.update(original(ctx))
        return captured

    regime.cluster_queries = spy
    regime.prepare(context)
    return captured


def check_plan(regime, context, cluster_of):
    """batches() draws exactly the budget's number of examples from the budget's pool, one query cluster a
    batch; every epoch yields the same draw, in an order of its own."""
    epochs = [[list(b) for b in regime.batches(context.triples, context.batch_size, seed)] for seed in (0, 1)]
    for batches in epochs:
        check_draw(batches, context.triples, cluster_of, context.batch_size)
    assert sorted(map(tuple, epochs[0])) == sorted(map(tuple, epochs[1]))
    assert regime.notes["distinct_triples_drawn"] == len({t for b in epochs[0] for t in b})
    return epochs[0]


def phases(context) -> dict[str, list]:
    found = defaultdict(list)
    for record in context.meter.records:
        found[record.phase].append(record)
    return found


def embed(encoder: BiEncoder, collection, batch) -> TripleEmbeddings:
    """The encoder's embeddings of a batch, as the training loop would hand them to loss()."""
    return TripleEmbeddings(
        queries=encoder.embed([collection.queries[t.query_id] for t in batch], "query"),
        positives=encoder.embed(collection.document_texts([t.positive_id for t in batch]), "doc"),
        negatives=encoder.embed(collection.document_texts([t.negative_id for t in batch]), "doc"),
        similarity=encoder.similarity,
    )


def test_prepare_with_a_score_file(tmp_path, collection, config, encoder):
    """Clustering and teacher scoring are phases charged to the regime; the plan covers the budget once, one
    cluster a batch; loss() is Margin-MSE against the file's margins."""
    path = write_scores(tmp_path / "scores.tsv")
    regime = BatchSampling.from_strings(
        {"teacher": f"scores:{path}", "in_batch_weight": "0", "clusters": "3", "teacher_scale": "1"}
    )
    context = context_for(collection, config, encoder, tmp_path)
    cluster_of = prepared(regime, context)

    found = phases(context)
    assert set(found) == {"cluster", "teacher-scoring"}
    (cluster,) = found["cluster"]
    assert cluster.charged_to == "batch-sampling" and cluster.cell == "c"
    assert cluster.count == len(QUERIES)
    assert all(r.charged_to == "batch-sampling" for r in found["teacher-scoring"])
    assert sorted(cluster_of) == sorted(QUERIES)
    assert len(set(cluster_of.values())) == 3 == regime.notes["clusters_used"]
    assert regime.notes["teacher"] == f"scores:{path}"

    batches = check_plan(regime, context, cluster_of)
    for batch in batches:
        margins = torch.tensor(
            [PAIR_SCORE[(t.query_id, t.positive_id)] - PAIR_SCORE[(t.query_id, t.negative_id)] for t in batch]
        )
        e = embed(encoder, collection, batch)
        loss = regime.loss(e, batch)
        assert torch.isfinite(loss)
        assert loss.item() == pytest.approx(MarginMSELoss()(e, margins).item(), rel=1e-6)


def test_prepare_auto_clusters_follow_the_paper(tmp_path, collection, config, encoder):
    """clusters=auto: 8 queries are far fewer than TAS-B's 200 a cluster, so one cluster; 16 triples at batch
    size 4 are four batches drawn from it."""
    path = write_scores(tmp_path / "scores.tsv")
    regime = BatchSampling(teacher=f"scores:{path}", in_batch_weight=0.0)
    context = context_for(collection, config, encoder, tmp_path)
    cluster_of = prepared(regime, context)
    assert set(cluster_of.values()) == {0}
    assert len(check_plan(regime, context, cluster_of)) == 4


def test_prepare_with_bm25_scores_in_batch_pairs(tmp_path, collection, config, encoder):
    """teacher=bm25 with in_batch_weight=0.75: every (query, other document of its batch) pair is scored, and
    loss() is Margin-MSE with the in-batch term built from those scores."""
    regime = BatchSampling.from_strings({"teacher": "bm25", "clusters": "2", "teacher_scale": "1"})
    context = context_for(collection, config, encoder, tmp_path)
    cluster_of = prepared(regime, context)

    found = phases(context)
    assert {"cluster", "teacher-scoring"} <= set(found)
    assert all(r.charged_to == "batch-sampling" for name in ("cluster", "teacher-scoring") for r in found[name])
    batches = check_plan(regime, context, cluster_of)

    score = regime.pair_scores
    for batch in batches:
        docs = [t.positive_id for t in batch] + [t.negative_id for t in batch]
        assert all((t.query_id, d) in score for t in batch for d in docs)
        positives = torch.tensor([score[(t.query_id, t.positive_id)] for t in batch])
        negatives = torch.tensor([score[(t.query_id, t.negative_id)] for t in batch])
        others = torch.tensor([[score[(t.query_id, d)] for d in docs] for t in batch])
        e = embed(encoder, collection, batch)
        loss = regime.loss(e, batch)
        expected = MarginMSELoss(0.75)(e, positives - negatives, positives[:, None] - others)
        assert torch.isfinite(loss)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_ensemble_in_batch_scores_share_the_scale_of_own_pairs(tmp_path, collection, config, encoder, tiny_model_dir):
    """Every pair the loss uses, a query's own or in-batch, gets the score the teacher gives that pair whatever
    else is scored: here, the pair scored on its own by a fresh teacher fitted on the same training triples.
    (Per-query min-max over the scored pairs keeps the order within a query, so an order test could not see a
    shift of scale between a query's own and in-batch pairs; equal values can.)"""
    spec = f"ensemble:bm25+bi-encoder:{tiny_model_dir}"
    regime = BatchSampling(teacher=spec, clusters=1, in_batch_weight=0.75, teacher_scale=1.0)
    context = context_for(collection, config, encoder, tmp_path)
    prepared(regime, context)
    own = {(t.query_id, d) for t in TRIPLES for d in (t.positive_id, t.negative_id)}
    in_batch = sorted(set(regime.pair_scores) - own)
    assert in_batch
    for pair in [*in_batch[:6], *sorted(own)[:6]]:
        teacher = parse_teacher(spec)
        teacher.load(config)
        alone = teacher_scores(teacher, [pair], context_for(collection, config, encoder, tmp_path))
        assert alone[pair] == pytest.approx(regime.pair_scores[pair], abs=1e-5), pair  # float32 padding noise


def test_teacher_scale_is_applied_and_recorded(tmp_path, collection, config, encoder):
    """teacher_scale=0.5: loss() is Margin-MSE against half the file's margins, and notes record 0.5; auto fits
    a positive factor on all training triples."""
    path = write_scores(tmp_path / "scores.tsv")
    regime = BatchSampling(teacher=f"scores:{path}", in_batch_weight=0.0, clusters=2, teacher_scale=0.5)
    context = context_for(collection, config, encoder, tmp_path)
    prepared(regime, context)
    assert regime.notes["teacher_scale"] == 0.5
    batch = TRIPLES[:4]
    margins = torch.tensor(
        [PAIR_SCORE[(t.query_id, t.positive_id)] - PAIR_SCORE[(t.query_id, t.negative_id)] for t in batch]
    )
    e = embed(encoder, collection, batch)
    assert regime.loss(e, batch).item() == pytest.approx(MarginMSELoss()(e, 0.5 * margins).item(), rel=1e-6)
    auto = BatchSampling(teacher=f"scores:{path}", in_batch_weight=0.0, clusters=2)
    small = context_for(collection, config, encoder, tmp_path, triples=TRIPLES[:8])
    prepared(auto, small)
    assert auto.notes["teacher_scale"] == auto.scale > 0
    assert {"teacher-calibration", "teacher-scale"} <= set(phases(small))
    assert all(r.charged_to == "batch-sampling" for r in small.meter.records)


def test_unscored_budget_triple_is_a_usage_error(tmp_path, collection, config, encoder):
    """TAS-Balanced needs every budget triple's margin: a triple the score file lacks stops prepare."""
    path = write_scores(tmp_path / "scores.tsv")
    triples = [*TRIPLES, Triple("q1", "d1", "d12")]  # (q1, d12) is in no line of the file
    regime = BatchSampling(teacher=f"scores:{path}", in_batch_weight=0.0, clusters=2)
    with pytest.raises(UsageError, match="no teacher score"):
        regime.prepare(context_for(collection, config, encoder, tmp_path, triples=triples))


def test_missing_score_file_fails_before_clustering(tmp_path, collection, config, encoder):
    """The teacher loads first, so a missing file fails before any charged work."""
    regime = BatchSampling(teacher=f"scores:{tmp_path / 'nowhere.tsv'}", in_batch_weight=0.0)
    context = context_for(collection, config, encoder, tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        regime.prepare(context)
    assert context.meter.records == []


# --- --similarity dot with a tiny model, against loops over the embeddings --------------------------------


@pytest.fixture
def dot_encoder(tiny_model_dir) -> BiEncoder:
    return BiEncoder(
        EncoderConfig(
            model=str(tiny_model_dir),
            similarity="dot",
            precision="fp32",
            device="cpu",
            max_query_length=16,
            max_doc_length=32,
        )
    )


def dot_batch(dot_encoder, collection):
    """Three triples (two share query q1 and, in the first and third, a positive copy) embedded unnormalised."""
    batch = [Triple("q1", "d1", "d2"), Triple("q2", "d3", "d4"), Triple("q1", "d1", "d8")]
    return batch, embed(dot_encoder, collection, batch)


def test_info_nce_with_dot_similarity_by_loops(dot_encoder, collection):
    """InfoNCE over raw dot products: -s(q_i, d+_i)/t + log sum over the unmasked columns of exp(s/t)."""
    batch, e = dot_batch(dot_encoder, collection)
    assert abs(e.queries[0].norm().item() - 1.0) > 1e-3  # dot similarity: not unit length
    temperature = 0.5
    docs = [*e.positives, *e.negatives]
    doc_ids = [t.positive_id for t in batch] + [t.negative_id for t in batch]
    expected = 0.0
    for i, triple in enumerate(batch):
        q = e.queries[i].double()
        relevant = {t.positive_id for t in batch if t.query_id == triple.query_id}
        kept = [c for c in range(len(docs)) if c == i or doc_ids[c] not in relevant]
        logits = [torch.dot(q, docs[c].double()).item() / temperature for c in kept]
        expected += -logits[kept.index(i)] + math.log(sum(math.exp(x) for x in logits))
    expected /= len(batch)
    loss = BatchSampling(sampler="hard-negatives", temperature=temperature).loss(e, batch)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_tas_balanced_margin_mse_with_dot_similarity_by_loops(dot_encoder, collection):
    """Margin-MSE plus 0.75 x the in-batch term over raw dot products, against given teacher scores."""
    batch, e = dot_batch(dot_encoder, collection)
    docs = [t.positive_id for t in batch] + [t.negative_id for t in batch]
    regime = BatchSampling(teacher="bm25", in_batch_weight=0.75)
    regime.pair_scores = {
        (t.query_id, d): 0.5 * k + len(t.query_id) for k, (t, d) in enumerate((t, d) for t in batch for d in docs)
    }
    teacher = regime.pair_scores
    vectors = dict(zip(docs, [*e.positives, *e.negatives], strict=True))

    def s(i: int, doc_id: str) -> float:
        return torch.dot(e.queries[i].double(), vectors[doc_id].double()).item()

    pair, in_batch = [], []
    for i, t in enumerate(batch):
        student = s(i, t.positive_id) - s(i, t.negative_id)
        pair.append((student - (teacher[(t.query_id, t.positive_id)] - teacher[(t.query_id, t.negative_id)])) ** 2)
        for c, d in enumerate(docs):
            if c in (i, i + len(batch)):
                continue
            student = s(i, t.positive_id) - s(i, d)
            target = teacher[(t.query_id, t.positive_id)] - teacher[(t.query_id, d)]
            in_batch.append((student - target) ** 2)
    expected = sum(pair) / len(pair) + 0.75 * sum(in_batch) / len(in_batch)
    assert regime.loss(e, batch).item() == pytest.approx(expected, rel=1e-5)
