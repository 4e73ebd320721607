"""The shared training loop, with the tiny encoder and the self-distillation regime: counting, validation
schedule, best-checkpoint restoration (step 0 a candidate), early stopping, a non-finite loss, and the learning
rate schedule that trains every example of every regime at a non-zero rate."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from benchmark.data.triples import Triple
from benchmark.measurement.phases import Meter
from benchmark.training.loop import NO_GAIN, CurvePoint, TrainingConfig, due, learning_rate_schedule, train
from benchmark.training.validation import ValidationSet
from regimes.self_distillation import SelfDistillation
from tests.benchmark.conftest import DOCUMENTS, QUERIES, make_encoder

DOC_TEXTS = {doc_id: f"{title} {text}" for doc_id, (title, text) in DOCUMENTS.items()}
TRIPLES = [
    Triple("q1", "d1", "d3"),
    Triple("q1", "d2", "d4"),
    Triple("q2", "d3", "d5"),
    Triple("q2", "d3", "d4"),
    Triple("q3", "d5", "d6"),
    Triple("q3", "d5", "d8"),
    Triple("q4", "d7", "d11"),
    Triple("q5", "d9", "d10"),
    Triple("q6", "d11", "d7"),
    Triple("q6", "d11", "d12"),
]
CHARGED = "self-distillation"
CELL = "self-distillation|1.0|0"


def texts(batch: Sequence[Triple]) -> tuple[list[str], list[str], list[str]]:
    """Query, positive and negative texts of a batch, looked up by id."""
    return (
        [QUERIES[t.query_id] for t in batch],
        [DOC_TEXTS[t.positive_id] for t in batch],
        [DOC_TEXTS[t.negative_id] for t in batch],
    )


def real_validation() -> ValidationSet:
    """Two held-out queries retrieving from the whole tiny corpus."""
    return ValidationSet(
        queries={"q7": QUERIES["q7"], "q8": QUERIES["q8"]},
        qrels={"q7": {"d12": 1}, "q8": {"d10": 1}},
        doc_texts=DOC_TEXTS,
    )


@dataclass
class ScriptedValidation(ValidationSet):
    """Returns scores from a script, and records the weights it was asked to score, so the best is known."""

    script: list[float] = field(default_factory=list)
    scored: list[dict[str, torch.Tensor]] = field(default_factory=list)

    def score(self, encoder, batch_size: int = 64) -> float:
        self.scored.append({k: v.detach().clone() for k, v in encoder.model.state_dict().items()})
        return self.script[len(self.scored) - 1]


def scripted(*scores: float) -> ScriptedValidation:
    base = real_validation()
    return ScriptedValidation(base.queries, base.qrels, base.doc_texts, script=list(scores))


def run(encoder, validation, regime=None, triples=TRIPLES, initial=0.25, **settings):
    """train() with a CPU meter and no energy tracking; returns the outcome and the meter."""
    config = TrainingConfig(**{"batch_size": 2, "learning_rate": 1e-3, "validate_every": 2, **settings})
    meter = Meter(torch.device("cpu"), energy=False)
    outcome = train(
        encoder,
        regime or SelfDistillation(),
        triples,
        texts,
        validation,
        initial_validation=initial,
        config=config,
        meter=meter,
        charged_to=CHARGED,
        cell=CELL,
        seed=13,
    )
    return outcome, meter


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_counts_curve_and_phases_with_real_validation(tiny_encoder):
    """Every triple is consumed once; the curve starts at the initial point; phases are charged to the regime."""
    initial = real_validation().score(tiny_encoder)
    before = tiny_encoder.state_copy()
    outcome, meter = run(tiny_encoder, real_validation(), triples=TRIPLES[:9], initial=initial)
    assert outcome.status == "ok" and not outcome.stopped_early
    assert outcome.examples_consumed == 9
    assert outcome.steps == 5  # ceil(9 / 2)
    assert outcome.curve[0] == CurvePoint(0, 0, 0.0, initial)
    assert [p.step for p in outcome.curve] == [0, 2, 4, 5]  # every 2 steps, and the last step
    assert [p.examples_seen for p in outcome.curve] == [0, 4, 8, 9]
    elapsed = [p.elapsed_s for p in outcome.curve]
    assert elapsed == sorted(elapsed) and elapsed[-1] > 0
    assert all(0.0 <= p.ndcg_at_10 <= 1.0 for p in outcome.curve)
    assert outcome.best_validation == max(p.ndcg_at_10 for p in outcome.curve)  # step 0 is a candidate too
    best = next(p for p in outcome.curve if p.ndcg_at_10 == outcome.best_validation)
    assert (outcome.best_step, outcome.best_examples, outcome.best_elapsed_s) == (
        best.step,
        best.examples_seen,
        best.elapsed_s,
    )
    assert not same_weights(tiny_encoder.state_copy(), before)  # it trained
    assert not tiny_encoder.training

    phases = [r.phase for r in meter.records]
    assert phases.count("validate") == 3 and phases[-1] == "train"
    for record in meter.records:
        assert record.charged_to == CHARGED and record.cell == CELL
    train_record = meter.records[-1]
    assert train_record.count == 9
    assert all(r.count == 2 for r in meter.records if r.phase == "validate")


def test_epochs_consume_the_triples_each_time(tiny_encoder):
    """Two epochs consume every triple twice; validation keeps its schedule across the epoch boundary."""
    outcome, _ = run(tiny_encoder, scripted(*[0.1 * i for i in range(1, 20)]), epochs=2, validate_every=3)
    assert outcome.examples_consumed == 2 * len(TRIPLES)
    assert outcome.steps == 10
    assert [p.step for p in outcome.curve] == [0, 3, 6, 9, 10]


def test_best_validation_step_is_restored(tiny_model_dir, tiny_encoder):
    """The encoder ends with the weights scored best (step 4 here), not the last ones."""
    validation = scripted(0.1, 0.5, 0.3)  # steps 2, 4, 5
    saved: list[dict[str, torch.Tensor]] = []
    original = tiny_encoder.state_copy

    def capture():
        state = original()
        saved.append(state)
        return state

    tiny_encoder.state_copy = capture
    outcome, _ = run(tiny_encoder, validation)
    assert [p.step for p in outcome.curve] == [0, 2, 4, 5]
    assert [p.ndcg_at_10 for p in outcome.curve] == [0.25, 0.1, 0.5, 0.3]
    assert (outcome.best_step, outcome.best_examples, outcome.best_validation) == (4, 8, 0.5)
    assert outcome.best_elapsed_s == outcome.curve[2].elapsed_s
    assert len(saved) == 2  # the initial weights (step 0, a candidate: 0.25 beats step 2) and step 4
    assert outcome.selection == "best validated checkpoint (step 4)"
    final = original()
    assert same_weights(saved[-1], validation.scored[1])  # what was kept is what scored 0.5
    assert same_weights(final, validation.scored[1])
    assert not same_weights(final, validation.scored[2])  # the last step's weights were dropped


def test_initial_weights_are_a_candidate(tiny_encoder):
    """When no trained checkpoint scores above the initial encoder, the initial weights are kept (step 0), and the
    outcome says there was no gain."""
    initial_state = tiny_encoder.state_copy()
    validation = scripted(0.2, 0.1, 0.05)
    outcome, _ = run(tiny_encoder, validation, initial=0.9)
    assert outcome.status == "ok"
    assert (outcome.best_step, outcome.best_examples, outcome.best_validation) == (0, 0, 0.9)
    assert outcome.selection == NO_GAIN
    assert [p.step for p in outcome.curve] == [0, 2, 4, 5]
    assert same_weights(tiny_encoder.state_copy(), initial_state)
    assert not same_weights(tiny_encoder.state_copy(), validation.scored[0])


def test_no_gain_stops_early_counting_from_the_initial_weights(tiny_encoder):
    """Patience counts validations from step 0: a regime that only hurts stops after `patience` validations."""
    outcome, _ = run(tiny_encoder, scripted(0.2, 0.1, 0.3), initial=0.9, validate_every=1, patience=2)
    assert outcome.steps == 2 and outcome.stopped_early
    assert outcome.best_step == 0 and outcome.selection == NO_GAIN


def test_patience_stops_early(tiny_encoder):
    """After `patience` validations without improvement training stops, with the best weights restored."""
    validation = scripted(0.5, 0.4, 0.3, 0.2, 0.1)
    outcome, meter = run(tiny_encoder, validation, validate_every=1, patience=2)
    assert outcome.stopped_early
    assert outcome.status == "ok"
    assert outcome.steps == 3
    assert outcome.examples_consumed == 6  # counted, not the budget's 10
    assert outcome.examples_at_nonzero_lr == 6
    assert outcome.examples_scheduled_at_nonzero_lr == outcome.examples_scheduled == 10  # the budget, all at rate > 0
    assert [p.step for p in outcome.curve] == [0, 1, 2, 3]
    assert outcome.best_step == 1
    assert same_weights(tiny_encoder.state_copy(), validation.scored[0])
    assert meter.records[-1].phase == "train" and meter.records[-1].count == 6


def test_improvement_resets_patience(tiny_encoder):
    """A new best resets the count: 2 misses, a best, 2 misses is not 'patience 3 exhausted'."""
    validation = scripted(0.5, 0.4, 0.4, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1)
    outcome, _ = run(tiny_encoder, validation, validate_every=1, patience=3, epochs=2)
    assert outcome.steps == 7  # best at 4, then misses at 5, 6, 7
    assert outcome.stopped_early
    assert outcome.best_step == 4


def test_patience_exhausted_on_the_last_step_is_not_early(tiny_encoder):
    """Running out of patience exactly at the last step is a complete run, not an early stop."""
    outcome, _ = run(tiny_encoder, scripted(0.5, 0.4), validate_every=4, patience=1, triples=TRIPLES[:8])
    assert outcome.steps == 4 and not outcome.stopped_early


class NaNAfter(SelfDistillation):
    """Self-distillation whose loss turns NaN from the given (1-based) step on."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.nan_from = step
        self.calls = 0

    def loss(self, embeddings, batch):
        self.calls += 1
        loss = super().loss(embeddings, batch)
        return loss * math.nan if self.calls >= self.nan_from else loss


def test_non_finite_loss_stops_training(tiny_encoder):
    """A NaN loss stops the regime with a status saying so; no NaN reaches the weights; phases are recorded."""
    validation = scripted(0.3, 0.9)
    outcome, meter = run(tiny_encoder, validation, regime=NaNAfter(3))
    assert outcome.status.startswith("stopped: non-finite loss")
    assert "step 3" in outcome.status
    assert outcome.steps == 2 and outcome.examples_consumed == 4
    assert [p.step for p in outcome.curve] == [0, 2]
    assert len(validation.scored) == 1
    state = tiny_encoder.state_copy()
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert same_weights(state, validation.scored[0])
    phases = {r.phase: r for r in meter.records}
    assert set(phases) == {"train", "validate"}
    assert all(r.charged_to == CHARGED and r.cell == CELL for r in meter.records)
    assert phases["train"].count == 4


def test_non_finite_loss_on_the_first_step_keeps_the_initial_weights(tiny_encoder):
    """With no finished step there is nothing to select: the encoder stays as it was."""
    before = tiny_encoder.state_copy()
    outcome, meter = run(tiny_encoder, scripted(), regime=NaNAfter(1))
    assert outcome.status.startswith("stopped: non-finite loss")
    assert outcome.steps == 0 and outcome.examples_consumed == 0
    assert same_weights(tiny_encoder.state_copy(), before)
    assert [r.phase for r in meter.records] == ["train"]
    assert meter.records[0].charged_to == CHARGED


def test_same_seed_same_weights(tiny_model_dir):
    """Training is seeded: two fresh encoders trained alike end with identical weights."""
    first, second = make_encoder(tiny_model_dir), make_encoder(tiny_model_dir)
    run(first, scripted(0.1, 0.2, 0.3))
    run(second, scripted(0.1, 0.2, 0.3))
    assert same_weights(first.state_copy(), second.state_copy())


@pytest.mark.parametrize("bad", [math.inf, -math.inf])
def test_infinite_loss_also_stops(tiny_encoder, bad):
    """Infinity is as non-finite as NaN."""

    class Infinite(SelfDistillation):
        def loss(self, embeddings, batch):
            return super().loss(embeddings, batch) * 0 + bad

    outcome, _ = run(tiny_encoder, scripted(), regime=Infinite())
    assert outcome.status.startswith("stopped: non-finite loss")
    assert outcome.steps == 0


def test_keeping_checkpoints_does_not_change_training(tiny_model_dir, tmp_path):
    """on_validation runs at every validation with the validated weights; what it does (saving a model, drawing
    random numbers) leaves the dropout masks, hence the trained weights, bit for bit as without it."""
    plain, keeping = make_encoder(tiny_model_dir), make_encoder(tiny_model_dir)
    assert any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in plain.model.modules())  # masks are drawn
    run(plain, scripted(0.1, 0.2, 0.3))
    seen: list[int] = []

    def keep(step: int) -> None:
        seen.append(step)
        torch.rand(1000)
        keeping.save(tmp_path / f"step-{step}")

    config = TrainingConfig(batch_size=2, learning_rate=1e-3, validate_every=2)
    meter = Meter(torch.device("cpu"), energy=False)
    outcome = train(
        keeping,
        SelfDistillation(),
        TRIPLES,
        texts,
        scripted(0.1, 0.2, 0.3),
        0.25,
        config,
        meter,
        charged_to=CHARGED,
        cell=CELL,
        seed=13,
        on_validation=keep,
    )
    assert seen == [p.step for p in outcome.curve[1:]] == [2, 4, 5]
    assert (tmp_path / "step-4" / "model.safetensors").exists()
    assert same_weights(plain.state_copy(), keeping.state_copy())


def test_metrics_of_every_step_and_validation_for_tracking(tiny_model_dir):
    """on_metrics gets each step's loss, rate and examples and each validation's nDCG@10 (the initial weights' at
    step 0), and changes nothing of the training."""
    plain, tracked = make_encoder(tiny_model_dir), make_encoder(tiny_model_dir)
    run(plain, scripted(0.1, 0.2, 0.3))
    logged: list[tuple[int, dict[str, float]]] = []
    config = TrainingConfig(batch_size=2, learning_rate=1e-3, validate_every=2)
    outcome = train(
        tracked,
        SelfDistillation(),
        TRIPLES,
        texts,
        scripted(0.1, 0.2, 0.3),
        0.25,
        config,
        Meter(torch.device("cpu"), energy=False),
        charged_to=CHARGED,
        cell=CELL,
        seed=13,
        on_metrics=lambda values, step: logged.append((step, dict(values))),
    )
    steps = [(step, values) for step, values in logged if "train/loss" in values]
    assert [step for step, _ in steps] == list(range(1, outcome.steps + 1)) == [1, 2, 3, 4, 5]
    assert [values["train/examples"] for _, values in steps] == [2, 4, 6, 8, 10]
    assert all(math.isfinite(values["train/loss"]) for _, values in steps)
    rates = [values["train/learning_rate"] for _, values in steps]
    assert all(rate > 0 for rate in rates) and rates == sorted(rates, reverse=True) and rates[0] <= 1e-3
    validations = [(step, values) for step, values in logged if "validation/ndcg_at_10" in values]
    assert validations == [
        (point.step, {"validation/ndcg_at_10": point.ndcg_at_10, "validation/examples": point.examples_seen})
        for point in outcome.curve
    ]
    assert [step for step, _ in validations] == [0, 2, 4, 5]
    assert same_weights(plain.state_copy(), tracked.state_copy())


class GlobalShuffle(SelfDistillation):
    """Orders its batches with the global generators, as a third-party regime might."""

    def batches(self, triples, batch_size, seed):
        order = list(triples)
        random.shuffle(order)
        order = [order[i] for i in np.random.permutation(len(order))]
        yield from super().batches(order, batch_size, seed)


def test_global_generators_are_seeded_per_cell(tiny_model_dir):
    """Whatever ran before in the process, the same seed gives the same training."""
    first, second = make_encoder(tiny_model_dir), make_encoder(tiny_model_dir)
    run(first, scripted(0.1, 0.2, 0.3), regime=GlobalShuffle())
    random.seed(999), np.random.seed(999), torch.manual_seed(999)
    run(second, scripted(0.1, 0.2, 0.3), regime=GlobalShuffle())
    assert same_weights(first.state_copy(), second.state_copy())


# --- the schedule spans the batches a regime yields, every step at a non-zero learning rate ----------------------
@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant_with_warmup"])
@pytest.mark.parametrize("total", [1, 2, 7, 14, 16])
@pytest.mark.parametrize("warmup_ratio", [0.0, 0.1, 0.5])
def test_every_step_of_the_schedule_trains_at_a_non_zero_rate(schedule, total, warmup_ratio):
    """Read as the training loop reads it (the rate in the optimizer when it steps), no step's rate is 0."""
    config = TrainingConfig(learning_rate=1e-3, schedule=schedule, warmup_ratio=warmup_ratio)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=config.learning_rate)
    scheduler = learning_rate_schedule(optimizer, config, total)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert all(rate > 0 for rate in rates), rates
    assert max(rates) == pytest.approx(config.learning_rate)


def test_linear_schedule_warms_up_from_the_first_step_and_decays_to_just_after_the_last():
    """(s + 1) / (w + 1) of the rate while warming up, (T - s) / (T - w) while decaying."""
    config = TrainingConfig(learning_rate=1.0, warmup_ratio=0.25)  # T = 8, w = 2
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=config.learning_rate)
    scheduler = learning_rate_schedule(optimizer, config, 8)
    rates = []
    for _ in range(8):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([1 / 3, 2 / 3, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])


class UnevenBatches(SelfDistillation):
    """Yields more batches than ceil(n / batch size), as TAS-Balanced's partial last batch per cluster does."""

    def batches(self, triples, batch_size, seed):
        for start in range(0, len(triples), batch_size + 1):  # a full batch, then a single triple
            yield triples[start : start + batch_size]
            if triples[start + batch_size : start + batch_size + 1]:
                yield triples[start + batch_size : start + batch_size + 1]


RISING = [0.3 + 0.01 * i for i in range(60)]  # every validation a new best: no early stop


def yielded(regime, triples, batch_size: int, epochs: int) -> list[list[Triple]]:
    return [list(b) for epoch in range(epochs) for b in regime.batches(triples, batch_size, 13 + epoch)]


def test_a_regime_yielding_more_batches_trains_every_one_at_a_non_zero_rate(tiny_encoder):
    """The schedule is sized by the batches the regime yields: 7 here, not ceil(10 / 2) = 5."""
    regime = UnevenBatches()
    batches = yielded(regime, TRIPLES, 2, 1)
    assert len(batches) > math.ceil(len(TRIPLES) / 2)
    outcome, _ = run(tiny_encoder, scripted(*RISING), regime=regime)
    assert outcome.steps == len(batches)
    assert outcome.examples_at_nonzero_lr == outcome.examples_consumed == len(TRIPLES)
    assert outcome.examples_scheduled_at_nonzero_lr == outcome.examples_scheduled == len(TRIPLES)


@pytest.fixture
def regime_context(tiny_beir, tiny_encoder, tmp_path):
    """A RegimeContext over the tiny BEIR folder, for regimes that prepare (teacher scores, clustering)."""
    from benchmark.data.collections import training_collection
    from benchmark.training.context import RegimeContext

    def make(label: str) -> RegimeContext:
        return RegimeContext(
            label=label,
            cell=CELL,
            collection=training_collection(str(tiny_beir)),
            triples=TRIPLES,
            encoder_config=tiny_encoder.config,
            meter=Meter(torch.device("cpu"), energy=False),
            cache_dir=tmp_path / "cache",
            seed=13,
            batch_size=2,
            encoder=tiny_encoder,
            training_triples=TRIPLES,
        )

    return make


def score_file(path, triples) -> str:
    from tests.tiny import write_score_file

    return str(write_score_file(path, [(2.0 + i % 3, 1.0 - i % 2, *t) for i, t in enumerate(triples)]))


@pytest.mark.parametrize("regime_name", ["self-distillation", "teacher-distillation", "tas-balanced", "hard-negatives"])
def test_every_regime_trains_every_example_at_a_non_zero_rate(regime_name, tiny_encoder, regime_context, tmp_path):
    """In each regime, over two epochs, the examples trained at a non-zero learning rate are the examples the
    regime trains on (teacher-distillation: the triples its score file scores, the others dropped)."""
    from regimes.batch_sampling import BatchSampling
    from regimes.teacher_distillation import TeacherDistillation

    scored = TRIPLES[:7]  # the score file leaves out the last three triples
    regimes = {
        "self-distillation": lambda: SelfDistillation(),
        "teacher-distillation": lambda: TeacherDistillation(teacher=f"scores:{score_file(tmp_path / 's.tsv', scored)}"),
        "tas-balanced": lambda: BatchSampling(
            teacher=f"scores:{score_file(tmp_path / 'all.tsv', TRIPLES)}", in_batch_weight=0.0, clusters=3
        ),
        "hard-negatives": lambda: BatchSampling(sampler="hard-negatives"),
    }
    regime = regimes[regime_name]()
    regime.prepare(regime_context(regime.label))
    batches = yielded(regime, TRIPLES, 2, 2)
    expected = 2 * len(scored) if regime_name == "teacher-distillation" else sum(len(b) for b in batches)
    assert sum(len(b) for b in batches) == expected
    outcome, _ = run(tiny_encoder, scripted(*RISING), regime=regime, epochs=2)
    assert outcome.status == "ok"
    assert outcome.steps == len(batches)
    assert outcome.examples_at_nonzero_lr == outcome.examples_consumed == expected
    assert outcome.examples_scheduled_at_nonzero_lr == outcome.examples_scheduled == expected


# --- validation spaced by examples ------------------------------------------------------------------------------
def test_validation_spaced_by_examples(tiny_encoder):
    """Every 3 examples at batch 2: after the steps that reach 4, 6 and 10 examples (and the last)."""
    outcome, _ = run(tiny_encoder, scripted(*[0.1] * 10), validate_every=None, validate_every_examples=3)
    assert [p.examples_seen for p in outcome.curve] == [0, 4, 6, 10]


@pytest.mark.parametrize("budget", [444, 1644, 3288])  # SciFact at 0.135, 0.5 and 1.0
def test_default_spacing_validates_every_budget_as_often(budget):
    """With defaults, a run validates ``validations`` times at any budget (and at its end): never 33 times at 1.0
    and 4 at 0.135, as a fixed spacing of 100 examples did."""
    config = TrainingConfig()
    assert config.validate_every is None and config.validate_every_examples is None
    sizes = [32] * (budget // 32) + ([budget % 32] if budget % 32 else [])
    seen, validations = 0, 0
    for step, size in enumerate(sizes, start=1):
        validations += due(config, step, seen, seen + size, budget) or step == len(sizes)  # the end validates
        seen += size
    assert validations == config.validations
