"""The self-distillation regime: every loss variant against values worked out by hand, where the gradient
goes, and how the regime is built from the command line.

Fixture (batch 2, dim 2). Rows are scaled on purpose so that cosine and dot product differ:

    q_1 = (1, 0)   d+_1 = (3, 4) -> (0.6, 0.8)   d-_1 = (0, 1)
    q_2 = (0, 2)   d+_2 = (0, 1)                 d-_2 = (4, 3) -> (0.8, 0.6)

Cosine similarities, entry (i, j):

    sim(q, d+)  = [[0.6, 0.0 ], [0.8, 1.0]]
    sim(q, d-)  = [[0.0, 0.8 ], [1.0, 0.6]]
    sim(d+, d-) = [[0.8, 0.96], [1.0, 0.6]]
"""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.common.errors import UsageError
from regimes.base import REGISTRY, TripleEmbeddings
from regimes.self_distillation import AdaptiveMarginLoss, SelfDistillation


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine similarity: normalise the rows, then a @ b.T."""
    return (a / a.norm(dim=1, keepdim=True)) @ (b / b.norm(dim=1, keepdim=True)).T


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise dot product."""
    return a @ b.T


def embeddings(similarity=cosine, grad: bool = False) -> TripleEmbeddings:
    """The fixture above, in float64 so that hand arithmetic compares tightly."""

    def leaf(rows):
        return torch.tensor(rows, dtype=torch.float64, requires_grad=grad)

    return TripleEmbeddings(
        queries=leaf([[1.0, 0.0], [0.0, 2.0]]),
        positives=leaf([[3.0, 4.0], [0.0, 1.0]]),
        negatives=leaf([[0.0, 1.0], [4.0, 3.0]]),
        similarity=similarity,
    )


# Residuals x = margin - target, by hand from the tables in the module docstring.
RESIDUALS = {
    # One entry per triple: margin sim(q_i, d+_i) - sim(q_i, d-_i) against the triple's own target.
    ("adaptive", False): [
        (0.6 - 0.0) - (0.8 / 2 + 0.5),  # -0.3
        (1.0 - 0.6) - (0.6 / 2 + 0.5),  # -0.4
    ],
    (0.3, False): [
        (0.6 - 0.0) - 0.3,  # 0.3
        (1.0 - 0.6) - 0.3,  # 0.1
    ],
    # Margin of triple j against sim(d+_i, d-_j) / 2 + 1/2 for every i: margins 0.6 and 0.4.
    ("distributed", False): [
        0.6 - (0.8 / 2 + 0.5),  # j=1, i=1: -0.3
        0.6 - (1.0 / 2 + 0.5),  # j=1, i=2: -0.4
        0.4 - (0.96 / 2 + 0.5),  # j=2, i=1: -0.58
        0.4 - (0.6 / 2 + 0.5),  # j=2, i=2: -0.4
    ],
    # Entry (i, j): sim(q_i, d+_i) - sim(q_i, d-_j) against sim(d+_i, d-_j) / 2 + 1/2.
    ("adaptive", True): [
        (0.6 - 0.0) - (0.8 / 2 + 0.5),  # (1, 1): -0.3
        (0.6 - 0.8) - (0.96 / 2 + 0.5),  # (1, 2): -1.18
        (1.0 - 1.0) - (1.0 / 2 + 0.5),  # (2, 1): -1.0
        (1.0 - 0.6) - (0.6 / 2 + 0.5),  # (2, 2): -0.4
    ],
    (0.3, True): [
        (0.6 - 0.0) - 0.3,  # (1, 1): 0.3
        (0.6 - 0.8) - 0.3,  # (1, 2): -0.5
        (1.0 - 1.0) - 0.3,  # (2, 1): -0.3
        (1.0 - 0.6) - 0.3,  # (2, 2): 0.1
    ],
}

# The same, finished by hand for l2 and l1: a check on the table itself.
HAND_L2 = {
    ("adaptive", False): (0.09 + 0.16) / 2,
    (0.3, False): (0.09 + 0.01) / 2,
    ("distributed", False): (0.09 + 0.16 + 0.3364 + 0.16) / 4,
    ("adaptive", True): (0.09 + 1.3924 + 1.0 + 0.16) / 4,
    (0.3, True): (0.09 + 0.25 + 0.09 + 0.01) / 4,
}
HAND_L1 = {
    ("adaptive", False): (0.3 + 0.4) / 2,
    (0.3, False): (0.3 + 0.1) / 2,
    ("distributed", False): (0.3 + 0.4 + 0.58 + 0.4) / 4,
    ("adaptive", True): (0.3 + 1.18 + 1.0 + 0.4) / 4,
    (0.3, True): (0.3 + 0.5 + 0.3 + 0.1) / 4,
}

ERRORS = {
    "l2": lambda x: x * x,
    "l1": abs,
    "soft": lambda x: math.log(1 + math.exp(-x)),
}


def hand_loss(target, in_batch: bool, error: str) -> float:
    residuals = RESIDUALS[(target, in_batch)]
    return sum(ERRORS[error](x) for x in residuals) / len(residuals)


VARIANTS = [(target, in_batch, error) for target, in_batch in RESIDUALS for error in ERRORS]


def test_fixture_similarities():
    """The hand values rest on these similarity tables; check them once."""
    e = embeddings()
    torch.testing.assert_close(
        cosine(e.queries, e.positives), torch.tensor([[0.6, 0.0], [0.8, 1.0]], dtype=torch.float64)
    )
    torch.testing.assert_close(
        cosine(e.queries, e.negatives), torch.tensor([[0.0, 0.8], [1.0, 0.6]], dtype=torch.float64)
    )
    torch.testing.assert_close(
        cosine(e.positives, e.negatives), torch.tensor([[0.8, 0.96], [1.0, 0.6]], dtype=torch.float64)
    )


@pytest.mark.parametrize("key", list(RESIDUALS), ids=str)
def test_residual_table_adds_up(key):
    """Guards the residual table against a slip: it must reproduce the l2 and l1 sums done by hand."""
    assert hand_loss(*key, "l2") == pytest.approx(HAND_L2[key])
    assert hand_loss(*key, "l1") == pytest.approx(HAND_L1[key])


@pytest.mark.parametrize(("target", "in_batch", "error"), VARIANTS, ids=str)
def test_loss_matches_hand_values(target, in_batch, error):
    """Each target x in_batch x error variant gives the value worked out by hand (cosine similarity)."""
    loss = AdaptiveMarginLoss(target=target, in_batch=in_batch, error=error)(embeddings())
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(hand_loss(target, in_batch, error), abs=1e-12)


# The authors' pairing (pairing=reference): entry (i, j) = sim(q_j, d+_j) - sim(q_i, d-_j) against
# sim(d+_i, d-_j) / 2 + 1/2. The diagonal is the same as anchored; (1, 2): (1.0 - 0.8) - 0.98 = -0.78 and
# (2, 1): (0.6 - 1.0) - 1.0 = -1.4. Its l1 loss happens to equal the anchored one (0.72), its l2 loss does not.
REFERENCE_L2 = (0.09 + 0.78**2 + 1.4**2 + 0.16) / 4


def test_in_batch_rows_are_anchored_on_their_own_query():
    """By default in-batch entry (i, j) uses sim(q_i, d+_i), not sim(q_j, d+_j) as the reference code broadcasts."""
    loss = AdaptiveMarginLoss(target="adaptive", in_batch=True, error="l2")(embeddings())
    assert loss.item() == pytest.approx(HAND_L2[("adaptive", True)], abs=1e-12)
    assert loss.item() != pytest.approx(REFERENCE_L2, abs=1e-6)


def test_reference_pairing_by_hand():
    """pairing=reference reproduces the authors' src/loss.py broadcast (pos.diag() - neg) on the cosine fixture."""
    loss = AdaptiveMarginLoss(target="adaptive", in_batch=True, error="l2", pairing="reference")(embeddings())
    assert loss.item() == pytest.approx(REFERENCE_L2, abs=1e-12)  # 0.7502
    static = AdaptiveMarginLoss(target=0.3, in_batch=True, error="l2", pairing="reference")(embeddings())
    # (1, 2): (1.0 - 0.8) - 0.3 = -0.1; (2, 1): (0.6 - 1.0) - 0.3 = -0.7
    assert static.item() == pytest.approx((0.09 + 0.01 + 0.49 + 0.01) / 4, abs=1e-12)


def test_reference_pairing_with_dot_product_by_hand():
    """Dot product: entry (i, j) = q_j.d+_j - q_i.d-_j - (d+_i.d-_j / 2 + 1/2), q.d+ diagonal [3, 2],
    q.d- = [[0, 4], [2, 6]], d+.d- = [[4, 24], [1, 3]]: residuals 0.5, -14.5, 0, -6 (anchored: 0.5, -13.5, -1, -6)."""
    loss = AdaptiveMarginLoss(target="adaptive", in_batch=True, error="l2", pairing="reference")(embeddings(dot))
    assert loss.item() == pytest.approx((0.25 + 14.5**2 + 0.0 + 36.0) / 4, abs=1e-12)  # 61.625
    anchored = AdaptiveMarginLoss(target="adaptive", in_batch=True, error="l2")(embeddings(dot))
    assert anchored.item() == pytest.approx((0.25 + 13.5**2 + 1.0 + 36.0) / 4, abs=1e-12)  # 54.875


def test_reference_pairing_needs_in_batch_and_the_whole_batch():
    """Without in-batch negatives the pairing means nothing (refused); on one process of several (only some
    queries) it cannot be computed (refused, rather than a silently different loss)."""
    with pytest.raises(ValueError, match="in_batch"):
        AdaptiveMarginLoss(in_batch=False, pairing="reference")
    with pytest.raises(ValueError, match="anchored or reference"):
        AdaptiveMarginLoss(pairing="transposed")
    whole = embeddings()
    one_row = TripleEmbeddings(
        whole.queries[1:], whole.positives[1:], whole.negatives[1:], cosine, whole.positives, whole.negatives, 1
    )
    with pytest.raises(ValueError, match="whole batch"):
        AdaptiveMarginLoss(pairing="reference")(one_row)
    assert AdaptiveMarginLoss()(one_row).dim() == 0  # anchored works on a process's rows


def test_distributed_pairs_each_negative_with_every_positive():
    """Distributed: triple j's target comes from sim(d+_i, d-_j), not sim(d+_j, d-_i) (the transpose)."""
    loss = AdaptiveMarginLoss(target="distributed", in_batch=False, error="l2")(embeddings())
    transposed = ((0.6 - 0.9) ** 2 + (0.6 - 0.98) ** 2 + (0.4 - 1.0) ** 2 + (0.4 - 0.8) ** 2) / 4
    assert loss.item() == pytest.approx(HAND_L2[("distributed", False)], abs=1e-12)
    assert loss.item() != pytest.approx(transposed, abs=1e-6)


def test_dot_product_single_triples():
    """With dot product the target sim(d+, d-) / 2 + 1/2 uses the raw dot product, unbounded.

    margins: q_1.d+_1 - q_1.d-_1 = 3 - 0 = 3; q_2.d+_2 - q_2.d-_2 = 2 - 6 = -4.
    targets: d+_1.d-_1 = 4 -> 2.5; d+_2.d-_2 = 3 -> 2.0.  residuals 0.5 and -6.
    """
    loss = AdaptiveMarginLoss(target="adaptive", in_batch=False, error="l2")(embeddings(dot))
    assert loss.item() == pytest.approx((0.5**2 + 6.0**2) / 2, abs=1e-12)  # 18.125


def test_dot_product_in_batch():
    """In-batch with dot product; entry (i, j) = q_i.d+_i - q_i.d-_j - (d+_i.d-_j / 2 + 1/2).

    q.d- = [[0, 4], [2, 6]], q.d+ diagonal = [3, 2], d+.d- = [[4, 24], [1, 3]].
    """
    residuals = [
        (3 - 0) - (4 / 2 + 0.5),  # 0.5
        (3 - 4) - (24 / 2 + 0.5),  # -13.5
        (2 - 2) - (1 / 2 + 0.5),  # -1
        (2 - 6) - (3 / 2 + 0.5),  # -6
    ]
    loss = AdaptiveMarginLoss(target="adaptive", in_batch=True, error="l1")(embeddings(dot))
    assert loss.item() == pytest.approx(sum(abs(x) for x in residuals) / 4, abs=1e-12)  # 5.25


def test_soft_error_is_stable_for_large_residuals():
    """log(1 + exp(-x)) must not overflow to inf when the margin is far below target (dot product)."""
    e = TripleEmbeddings(
        queries=torch.tensor([[10.0, 0.0]], dtype=torch.float64),
        positives=torch.tensor([[0.0, 1.0]], dtype=torch.float64),
        negatives=torch.tensor([[100.0, 0.0]], dtype=torch.float64),
        similarity=dot,
    )
    loss = AdaptiveMarginLoss(target=0.3, in_batch=False, error="soft")(e)
    assert loss.item() == pytest.approx(1000.3)  # x = (0 - 1000) - 0.3; log(1 + e^1000.3) ~ 1000.3


def test_distributed_with_in_batch_is_refused_by_the_loss():
    """The combination is undefined (as in the authors' code): ValueError, explicit or via the default."""
    with pytest.raises(ValueError, match="distributed"):
        AdaptiveMarginLoss(target="distributed", in_batch=True)
    with pytest.raises(ValueError, match="distributed"):
        AdaptiveMarginLoss(target="distributed")


# --- gradient through the target -------------------------------------------------------------------------


def one_triple_dot() -> TripleEmbeddings:
    """q = (1, 0), d+ = (1, 0), d- = (0, 1), dot product: margin 1, target 0 / 2 + 1/2, residual r = 0.5.

    l2 loss (r)^2 with r = q.d+ - q.d- - (d+.d- / 2 + 1/2):
      dL/dq  = 2r (d+ - d-)      = (1, -1)       either way (queries are not in the target)
      dL/dd+ = 2r (q - d-/2)     = (1, -0.5)     with the gradient through the target
             = 2r q              = (1, 0)        target detached
      dL/dd- = 2r (-q - d+/2)    = (-1.5, 0)     with the gradient through the target
             = 2r (-q)           = (-1, 0)       target detached
    """

    def leaf(row):
        return torch.tensor([row], dtype=torch.float64, requires_grad=True)

    return TripleEmbeddings(leaf([1.0, 0.0]), leaf([1.0, 0.0]), leaf([0.0, 1.0]), dot)


HAND_GRADIENTS = {
    # detach_target: (dL/dq, dL/dd+, dL/dd-)
    False: ([1.0, -1.0], [1.0, -0.5], [-1.5, 0.0]),
    True: ([1.0, -1.0], [1.0, 0.0], [-1.0, 0.0]),
}


def assert_gradients(e: TripleEmbeddings, expected) -> None:
    for tensor, row in zip((e.queries, e.positives, e.negatives), expected, strict=True):
        torch.testing.assert_close(tensor.grad, torch.tensor([row], dtype=torch.float64))


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize(("target", "in_batch"), [("adaptive", True), ("adaptive", False), ("distributed", False)])
def test_gradient_through_target_by_hand(target, in_batch, detach):
    """With one triple every adaptive variant is the same loss; its gradients match the hand derivation.

    The target's own contribution is -r d- on d+ and -r d+ on d-; detaching removes exactly that.
    """
    e = one_triple_dot()
    loss = AdaptiveMarginLoss(target=target, in_batch=in_batch, detach_target=detach)(e)
    assert loss.item() == pytest.approx(0.25)
    loss.backward()
    assert_gradients(e, HAND_GRADIENTS[detach])


def test_regime_keeps_gradient_through_target_by_default():
    """The paper's numbers come from code that does not detach: the default regime must not detach either."""
    e = one_triple_dot()
    SelfDistillation().loss(e, []).backward()
    assert_gradients(e, HAND_GRADIENTS[False])

    e = one_triple_dot()
    SelfDistillation.from_strings({"detach_target": "true"}).loss(e, []).backward()
    assert_gradients(e, HAND_GRADIENTS[True])


@pytest.mark.parametrize(
    ("target", "in_batch", "error"),
    [v for v in VARIANTS if not isinstance(v[0], float)],
    ids=str,
)
def test_detaching_changes_gradients_not_value(target, in_batch, error):
    """Cosine fixture: same loss, same query gradients, different document gradients."""
    results = {}
    for detach in (False, True):
        e = embeddings(grad=True)
        loss = AdaptiveMarginLoss(target=target, in_batch=in_batch, error=error, detach_target=detach)(e)
        loss.backward()
        results[detach] = (loss.item(), e.queries.grad, e.positives.grad, e.negatives.grad)
    (kept, q_kept, p_kept, n_kept), (detached, q_det, p_det, n_det) = results[False], results[True]
    assert kept == detached
    torch.testing.assert_close(q_kept, q_det)
    assert not torch.allclose(p_kept, p_det)
    assert not torch.allclose(n_kept, n_det)


@pytest.mark.parametrize("in_batch", [True, False])
def test_static_target_has_nothing_to_detach(in_batch):
    """A float target carries no gradient, so detach_target makes no difference at all."""
    grads = []
    for detach in (False, True):
        e = embeddings(grad=True)
        AdaptiveMarginLoss(target=0.3, in_batch=in_batch, detach_target=detach)(e).backward()
        grads.append((e.queries.grad, e.positives.grad, e.negatives.grad))
    for kept, detached in zip(*grads, strict=True):
        torch.testing.assert_close(kept, detached)


# --- the regime on the command line ----------------------------------------------------------------------


def test_registered_by_name():
    """`--regimes self-distillation` must find this class."""
    assert REGISTRY["self-distillation"] is SelfDistillation


def test_defaults_are_the_papers():
    """Adaptive target, in-batch negatives, l2 error, gradient through the target."""
    regime = SelfDistillation()
    assert regime.settings == {
        "target": "adaptive",
        "in_batch": True,
        "error": "l2",
        "detach_target": False,
        "pairing": "anchored",
    }
    assert regime.label == "self-distillation"
    assert regime.loss(embeddings(), []).item() == pytest.approx(HAND_L2[("adaptive", True)], abs=1e-12)


def test_from_strings_parses_settings():
    """Strings typed after `self-distillation:` become typed settings and reach the loss."""
    regime = SelfDistillation.from_strings({"in_batch": "false", "target": "0.2", "error": "soft"})
    assert regime.settings == {
        "target": 0.2,
        "in_batch": False,
        "error": "soft",
        "detach_target": False,
        "pairing": "anchored",
    }
    criterion = regime.criterion
    assert isinstance(criterion.target, float) and criterion.target == 0.2
    assert criterion.in_batch is False
    assert criterion.error == "soft"


def test_from_strings_distributed_without_in_batch():
    """target=distributed works once in_batch=false, and gives the hand value."""
    regime = SelfDistillation.from_strings({"target": "distributed", "in_batch": "false"})
    assert regime.loss(embeddings(), []).item() == pytest.approx(HAND_L2[("distributed", False)], abs=1e-12)


def test_distributed_with_in_batch_is_a_usage_error():
    """The user sees a UsageError naming in_batch, whether explicit or by default."""
    with pytest.raises(UsageError, match="in_batch"):
        SelfDistillation(target="distributed", in_batch=True)
    with pytest.raises(UsageError, match="in_batch"):
        SelfDistillation.from_strings({"target": "distributed"})


def test_unknown_parameter_is_a_usage_error():
    """A misspelt key is named in the message, from the command line or from Python."""
    with pytest.raises(UsageError, match="'margin'"):
        SelfDistillation.from_strings({"margin": "0.2"})
    with pytest.raises(UsageError, match="'margin'"):
        SelfDistillation(margin=0.2)


@pytest.mark.parametrize(
    ("key", "text"),
    [("error", "l3"), ("in_batch", "maybe"), ("target", "abc"), ("detach_target", "2"), ("pairing", "both")],
)
def test_bad_value_is_a_usage_error(key, text):
    """A value that does not parse is a UsageError naming the parameter and the value."""
    with pytest.raises(UsageError) as raised:
        SelfDistillation.from_strings({key: text})
    message = str(raised.value)
    assert key in message
    assert text in message


def test_label_shows_only_changed_settings_and_round_trips():
    """The label names each non-default setting, omits defaults, and parses back to the same regime."""
    regime = SelfDistillation.from_strings(
        {"target": "0.2", "in_batch": "false", "error": "l2", "detach_target": "false"}
    )
    name, _, rest = regime.label.partition(":")
    assert name == "self-distillation"
    shown = dict(item.split("=", 1) for item in rest.split(","))
    assert set(shown) == {"target", "in_batch"}
    assert shown["target"] == "0.2"
    assert SelfDistillation.from_strings(shown).settings == regime.settings
    assert SelfDistillation.from_strings({"error": "soft"}).label == "self-distillation:error=soft"


def test_pairing_on_the_command_line(monkeypatch):
    """pairing=reference reaches the loss and the label; with in_batch=false, or on several processes, it is a
    UsageError before any training."""
    regime = SelfDistillation.from_strings({"pairing": "reference"})
    assert regime.label == "self-distillation:pairing=reference"
    assert regime.loss(embeddings(), []).item() == pytest.approx(REFERENCE_L2, abs=1e-12)
    with pytest.raises(UsageError, match="in_batch=true"):
        SelfDistillation.from_strings({"pairing": "reference", "in_batch": "false"})
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UsageError, match="one process"):
        SelfDistillation.from_strings({"pairing": "reference"})
    SelfDistillation.from_strings({})  # anchored trains on several processes


# --- --similarity dot with a tiny model, against loops over the embeddings --------------------------------


@pytest.mark.parametrize("pairing", ["anchored", "reference"])
def test_tiny_model_dot_similarity_by_loops(tmp_path, pairing):
    """A tiny BERT with --similarity dot: the regime's loss equals the mean over (i, j) of
    (margin(i, j) - (d+_i.d-_j / 2 + 1/2))^2 computed with one dot product at a time."""
    from benchmark.encoder import BiEncoder, EncoderConfig
    from tests.tiny import save_tiny_bert

    folder = save_tiny_bert(tmp_path / "tiny")
    config = EncoderConfig(model=str(folder), similarity="dot", precision="fp32", device="cpu", max_doc_length=32)
    encoder = BiEncoder(config)
    queries = ["vitamin d and bones", "smoking and lungs", "exercise and blood pressure"]
    positives = ["vitamin d deficiency weakens bones", "tobacco causes lung cancer", "aerobic exercise helps"]
    negatives = ["coffee and the heart", "air pollution", "salt raises blood pressure"]
    e = TripleEmbeddings(
        encoder.embed(queries, "query"),
        encoder.embed(positives, "doc"),
        encoder.embed(negatives, "doc"),
        encoder.similarity,
    )
    assert abs(e.queries[0].norm().item() - 1.0) > 1e-3  # dot similarity: not unit length

    def s(a: torch.Tensor, b: torch.Tensor) -> float:
        return torch.dot(a.double(), b.double()).item()

    residuals = []
    for i in range(3):
        for j in range(3):
            anchor = j if pairing == "reference" else i
            margin = s(e.queries[anchor], e.positives[anchor]) - s(e.queries[i], e.negatives[j])
            residuals.append(margin - (s(e.positives[i], e.negatives[j]) / 2 + 0.5))
    expected = sum(x * x for x in residuals) / len(residuals)
    loss = SelfDistillation(pairing=pairing).loss(e, [])
    assert loss.item() == pytest.approx(expected, rel=1e-5)
