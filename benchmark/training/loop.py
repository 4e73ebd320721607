"""The one training loop every regime shares: same optimizer, schedule, batch size, precision and selection.

A regime contributes only the order of its batches and its loss. The batches of every epoch are listed before the
first step, so the learning-rate schedule spans exactly the steps the regime yields, and every step, the first and
the last included, trains at a non-zero learning rate. Validation runs every N examples (or N steps) on held-out
queries and at the end; the initial weights (step 0) are a candidate like every validated checkpoint: the best one
on validation nDCG@10 is restored at the end, the initial weights when no trained checkpoint beats them; training
stops early after ``patience`` validations without improvement.

Determinism: every cell seeds torch, Python's and NumPy's generators from its seed, so the same seed and config on
a CPU (with the same number of threads) give bitwise-identical weights and metrics, whatever ran before it in the
process; work done between steps for bookkeeping (saving a checkpoint) cannot draw from the training generator.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import get_scheduler

from benchmark.data.triples import Triple
from benchmark.encoder import BiEncoder
from benchmark.measurement.phases import Meter
from benchmark.training.distributed import ONE_PROCESS, Processes, batch_loss, wrap
from benchmark.training.validation import ValidationSet
from regimes.base import Regime


@dataclass(frozen=True)
class TrainingConfig:
    batch_size: int = 32
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: str = "linear"
    epochs: int = 1
    validations: int = 8  # validations per run, evenly spaced over its examples (step 0 is a candidate besides)
    validate_every_examples: int | None = None  # a fixed spacing in examples instead, when given
    validate_every: int | None = None  # steps between validations instead, when given
    patience: int = 3
    max_grad_norm: float = 1.0


@dataclass
class CurvePoint:
    """One validation: a row of curves.csv."""

    step: int
    examples_seen: int
    elapsed_s: float  # training wall-clock so far, validation excluded
    ndcg_at_10: float


@dataclass
class TrainingOutcome:
    examples_consumed: int = 0
    examples_at_nonzero_lr: int = 0  # examples of the steps taken at a learning rate > 0 (all of them)
    examples_scheduled: int = 0  # examples in the batches the schedule spans (the budget's, every epoch)
    examples_scheduled_at_nonzero_lr: int = 0  # of those, the ones whose step the schedule gives a rate > 0
    steps: int = 0
    best_step: int = 0
    best_examples: int = 0
    best_elapsed_s: float = 0.0
    best_validation: float = float("nan")
    stopped_early: bool = False
    status: str = "ok"
    selection: str = ""  # which weights were kept: a validated checkpoint, or the initial ones (no gain)
    processes: int = 1  # training processes; examples_consumed is reconciled over all of them
    curve: list[CurvePoint] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """torch (dropout), Python and NumPy generators, so a cell's training depends on its seed alone."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


NO_GAIN = "no gain over the initial weights: the initial weights are kept"


def learning_rate_schedule(
    optimizer: torch.optim.Optimizer, config: TrainingConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """``config.schedule`` from transformers over ``total_steps`` steps, none of them at learning rate 0.

    transformers' schedules start warm-up at factor 0 and end linear decay at 0 on the step after the last; the
    schedule is built one step longer with one more warm-up step and read from its second step on, so step s
    (0-based) trains at (s + 1) / (w + 1) of the rate during warm-up and at (T - s) / (T - w) during linear decay.
    """
    warmup = round(config.warmup_ratio * total_steps)
    longer = get_scheduler(config.schedule, optimizer, num_warmup_steps=warmup + 1, num_training_steps=total_steps + 1)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, [lambda step, factor=factor: factor(step + 1) for factor in longer.lr_lambdas]
    )


def scheduled_at_nonzero_rate(scheduler: torch.optim.lr_scheduler.LambdaLR, epochs: list[list[list]]) -> int:
    """The examples of every scheduled step whose learning-rate factor is > 0, read off the schedule before any
    step is taken: the whole budget when the schedule fits the batches, whether or not training stops early."""
    steps = [len(batch) for batches in epochs for batch in batches]
    return sum(size for step, size in enumerate(steps) if all(factor(step) > 0 for factor in scheduler.lr_lambdas))


def spacing(config: TrainingConfig, total_examples: int) -> int:
    """Examples between validations: ``validate_every_examples`` when given, else the run's examples over
    ``validations``, so that every budget validates as often and validation costs a fixed share of any run (at
    SciFact's 1.0, every 100 examples would validate 33 times, mostly spent encoding the validation corpus)."""
    if config.validate_every_examples is not None:
        return config.validate_every_examples
    return max(1, math.ceil(total_examples / max(1, config.validations)))


def due(config: TrainingConfig, steps: int, examples_before: int, examples: int, total_examples: int) -> bool:
    """Whether the step that took the examples seen from ``examples_before`` to ``examples`` ends on a validation:
    every ``validate_every`` steps when that is set, else each time a multiple of the spacing in examples is
    reached or passed."""
    if config.validate_every is not None:
        return steps % config.validate_every == 0
    every = spacing(config, total_examples)
    return examples // every > examples_before // every


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite: the regime's training is stopped and its status says so."""


def train(
    encoder: BiEncoder,
    regime: Regime,
    triples: Sequence[Triple],
    texts: Callable[[Sequence[Triple]], tuple[list[str], list[str], list[str]]],
    validation: ValidationSet | None,
    initial_validation: float,
    config: TrainingConfig,
    meter: Meter,
    charged_to: str,
    cell: str,
    seed: int,
    on_step: Callable[[int], None] | None = None,
    on_validation: Callable[[int], None] | None = None,
    processes: Processes = ONE_PROCESS,
    on_metrics: Callable[[dict[str, float], int], None] | None = None,
) -> TrainingOutcome:
    """Train ``encoder`` in place on ``triples`` with ``regime``'s batches and loss; restore the best weights.

    ``initial_validation`` is the initial weights' score (step 0, a candidate); NaN when there is none.
    ``on_validation(step)`` runs after each validation with the validated weights in place (to keep checkpoints).
    ``on_metrics(values, step)`` is given, for experiment tracking, each step's ``train/loss``,
    ``train/learning_rate`` and ``train/examples`` and each validation's ``validation/ndcg_at_10`` and
    ``validation/examples`` (the initial weights' at step 0), outside the training clock.
    On several processes each trains on its rows of every batch; only the main one validates (``validation``
    is None on the others) and its decision to go on is shared.
    """
    seed_everything(seed)
    # every epoch's batches before the first step: the main process's are everyone's, whatever a regime's
    # preparation did elsewhere, and the schedule spans the steps they make, not ceil(len(triples) / batch size)
    epochs = processes.broadcast(
        [list(regime.batches(triples, config.batch_size, seed + epoch)) for epoch in range(config.epochs)]
    )
    total_steps = max(1, sum(len(batches) for batches in epochs))
    total_examples = sum(len(batch) for batches in epochs for batch in batches)
    optimizer = torch.optim.AdamW(encoder.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = learning_rate_schedule(optimizer, config, total_steps)
    outcome = TrainingOutcome(best_validation=-math.inf, processes=processes.world_size)
    outcome.examples_scheduled = total_examples
    outcome.examples_scheduled_at_nonzero_lr = scheduled_at_nonzero_rate(scheduler, epochs)
    outcome.curve.append(CurvePoint(0, 0, 0.0, initial_validation))
    best_state = None
    if validation is not None and math.isfinite(initial_validation):  # step 0 is a candidate
        outcome.best_validation = initial_validation
        best_state = encoder.state_copy()
        if on_metrics is not None:
            on_metrics({"validation/ndcg_at_10": initial_validation, "validation/examples": 0}, 0)
    without_improvement = 0
    train_seconds = 0.0
    local_examples = 0  # this process's rows, summed over processes at the end
    model = wrap(encoder, processes)
    encoder.train()

    def validate() -> bool:
        """Score the current weights; keep them if best. Returns False when patience is exhausted."""
        if validation is None:  # not the main process: the main one validates and says whether to go on
            outcome.curve.append(CurvePoint(outcome.steps, outcome.examples_consumed, train_seconds, math.nan))
            return processes.broadcast(True)
        return processes.broadcast(validate_here())

    def validate_here() -> bool:
        nonlocal best_state, without_improvement
        with meter.phase("validate", charged_to, cell) as record:
            score = validation.score(encoder)
            record.count = len(validation.queries)
        encoder.train()
        if on_validation is not None:
            with torch.random.fork_rng(devices=[]):  # the callback's draws must not change the training
                on_validation(outcome.steps)
        outcome.curve.append(CurvePoint(outcome.steps, outcome.examples_consumed, train_seconds, score))
        if on_metrics is not None:
            on_metrics(
                {"validation/ndcg_at_10": score, "validation/examples": outcome.examples_consumed}, outcome.steps
            )
        if score > outcome.best_validation:
            outcome.best_validation = score
            outcome.best_step = outcome.steps
            outcome.best_examples = outcome.examples_consumed
            outcome.best_elapsed_s = train_seconds
            best_state = encoder.state_copy()
            without_improvement = 0
        else:
            without_improvement += 1
        return without_improvement < config.patience

    with meter.phase("train", charged_to, cell) as record:
        keep_going = True
        for batches in epochs:
            if not keep_going:
                break
            for batch in batches:
                started = time.perf_counter()
                loss, whole_batch_loss = batch_loss(model, encoder, regime, batch, texts, processes)
                if not math.isfinite(whole_batch_loss):  # the same value on every process: all stop together
                    outcome.status = f"stopped: non-finite loss ({whole_batch_loss}) at step {outcome.steps + 1}"
                    keep_going = False
                    break
                loss.backward()
                torch.nn.utils.clip_grad_norm_(encoder.model.parameters(), config.max_grad_norm)
                rate = optimizer.param_groups[0]["lr"]  # the rate this step trains at
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                meter.synchronize()
                train_seconds += time.perf_counter() - started
                outcome.steps += 1
                examples_before = outcome.examples_consumed
                outcome.examples_consumed += len(batch)
                if rate > 0:
                    outcome.examples_at_nonzero_lr += len(batch)
                local_examples += processes.shares(len(batch))[processes.rank]
                if on_step is not None:
                    on_step(len(batch))
                last_of_all = outcome.steps == total_steps
                seen = outcome.examples_consumed
                if on_metrics is not None:
                    on_metrics(
                        {"train/loss": whole_batch_loss, "train/learning_rate": rate, "train/examples": seen},
                        outcome.steps,
                    )
                if due(config, outcome.steps, examples_before, seen, total_examples) or last_of_all:
                    keep_going = validate()
                    if not keep_going:
                        outcome.stopped_early = not last_of_all
                        break
        if outcome.curve[-1].step != outcome.steps and outcome.status == "ok":
            validate()
        record.count = outcome.examples_consumed
    reconciled = processes.total(local_examples)
    if reconciled != outcome.examples_consumed:  # every budgeted example exactly once, over all processes
        raise RuntimeError(f"the processes consumed {reconciled:.0f} examples, not {outcome.examples_consumed}")
    if validation is not None:
        outcome.selection = selection(outcome, initial_validation)
    if best_state is not None:
        encoder.load_state(best_state)
    encoder.eval()
    return outcome


def selection(outcome: TrainingOutcome, initial_validation: float) -> str:
    """What the restored weights are, in words for results.csv."""
    if outcome.best_step == 0 and math.isfinite(initial_validation):
        return NO_GAIN
    if not math.isfinite(outcome.best_validation):
        return "last weights: validation gave no score"
    return f"best validated checkpoint (step {outcome.best_step})"
