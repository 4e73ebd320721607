"""Command line: ``python -m benchmark run``, ``reproduce``, ``report``, ``evaluate``, ``compare`` and ``list``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

from benchmark.common.errors import UsageError


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line naming the problem and the fix, exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}; see `python -m benchmark {self.prog.split()[-1]} --help`")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number >= 0")
    return value


def probability_or_model(text: str) -> float | None:
    """A dropout probability in [0, 1), or ``model`` for the model's own (None)."""
    if text == "model":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a probability nor 'model'") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1)")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a fraction such as 0.135") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is outside (0, 1]; give a fraction such as 0.135")
    return value


def fractions(text: str) -> tuple[float, ...]:
    """A comma-separated list of fractions in (0, 1], e.g. 0.135,0.25,0.5,1.0."""
    values = tuple(fraction(part.strip()) for part in text.split(",") if part.strip())
    if not values:
        raise argparse.ArgumentTypeError("no fraction given; give e.g. 0.135 or 0.135,0.25,0.5,1.0")
    return tuple(dict.fromkeys(values))


def seeds(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole numbers; give e.g. 42 or 1,2,3") from None
    if not values:
        raise argparse.ArgumentTypeError("no seed given; give e.g. 42 or 1,2,3")
    return tuple(dict.fromkeys(values))


def trackers(text: str) -> tuple[str, ...]:
    """``--log-with``: comma-separated experiment trackers (benchmark.measurement.tracking), each named once."""
    from benchmark.measurement.tracking import TRACKERS

    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in TRACKERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{', '.join(unknown) or repr(text)} is not a tracker; give {', '.join(TRACKERS)}"
        )
    return names


def fraction_or_none(text: str) -> float | None:
    """``--reference-fraction``: a fraction in (0, 1], or ``none``."""
    return None if text.strip().lower() == "none" else fraction(text)


def margin(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give an nDCG@10 margin such as 0.02") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is outside (0, 1); give an nDCG@10 margin such as 0.02")
    return value


def learning_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a learning rate such as 2e-5") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a learning rate >= 0; give one such as 2e-5")
    return value


NO_LEARNING = "warning: learning rate 0: nothing will be learned (a negative control)"

REPRODUCE_CURVE = (0.135, 1.0)  # 0.5 too (`--curve 0.135,0.5,1.0`): 52 more steps, about 6 min on 2 bf16 CPU cores
REPRODUCE_SEEDS = (42, 43, 44)  # claim cells: self-distillation at 0.135 and the reference at its full budget
# The authors' static-margin grid is 0.1, 0.2, ..., 1.0 (configs/exp1/sweep-config-exp1.yaml); every other point,
# on one seed, is what fits beside 3 seeds of the claim cells (README, "The paper's claims": time)
REPRODUCE_STATIC_GRID = "self-distillation:target=0.1|0.3|0.5|0.7|0.9"
OUT_OF_DOMAIN = "vaswani"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="benchmark", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    commands.add_parser("list", help="print every regime with its parameters and defaults")
    run = commands.add_parser("run", help="train regimes on one data budget and compare them")
    what = run.add_argument_group("what to compare")
    what.add_argument(
        "--regimes",
        default="self-distillation",
        help="'all', or comma-separated specs name[:key=value,...] (default: self-distillation)",
    )
    what.add_argument(
        "--data-fraction",
        type=fractions,
        default=(0.135,),
        help="share(s) of the training triples every regime gets, in (0, 1]; a list such as 0.135,0.25,0.5,1.0 "
        "trains each regime at each (default: 0.135)",
    )
    add_shared_options(run)
    reproduce = commands.add_parser(
        "reproduce",
        help="the paper's claims: self-distillation at 0.135 and the reference along a data-fraction curve",
    )
    reproduce.add_argument(
        "--curve",
        type=fractions,
        default=REPRODUCE_CURVE,
        help="fractions the reference is trained at (default: 0.135,1.0)",
    )
    reproduce.add_argument(
        "--self-distillation-fractions",
        type=fractions,
        default=(0.135,),
        help="fractions self-distillation is trained at (default: 0.135)",
    )
    reproduce.add_argument(
        "--static-search",
        default=REPRODUCE_STATIC_GRID,
        help="claim 2's parametrized comparator, a --tune spec trained at 0.135 ('none' skips it; default: "
        f"{REPRODUCE_STATIC_GRID!r}, every other point of the authors' 0.1..1.0 grid)",
    )
    reproduce.add_argument(
        "--other-seeds",
        choices=["first", "all"],
        default="first",
        help="seeds of the cells no claim compares across seeds: the reference's curve below its full budget and "
        "the static search ('first': the first of --seeds; default: first)",
    )
    add_shared_options(reproduce)
    reproduce.set_defaults(seeds=REPRODUCE_SEEDS)
    report = commands.add_parser("report", help="re-render tables, plots and report.md from a finished run")
    report.add_argument("run_dir", type=Path, help="results/<run-id>")
    report.add_argument("--tolerance", type=float, default=0.01)
    report.add_argument(
        "--equivalence-margin",
        type=margin,
        default=None,
        help="claim 1's TOST margin in nDCG@10 (default: the run's own, else 0.02)",
    )
    compare = commands.add_parser(
        "compare",
        help="the same systems across finished runs (two machines, before and after a change): effectiveness and "
        "costs side by side with ratios to the first run",
    )
    compare.add_argument("run_dirs", type=Path, nargs="*", metavar="RUN_DIR", help="results/<run-id>, two or more")
    compare.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where the table goes as CSV: a file, or a folder to hold compare.csv (default: ./compare.csv)",
    )
    add_evaluate_command(commands)
    return parser


def add_evaluate_command(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a finished run's encoders, or any model, on more evaluation sets, without training",
    )
    evaluate.add_argument(
        "target",
        help="results/<run-id> (a finished run or evaluation folder), or a sentence-transformers / Hugging Face "
        "model folder or id",
    )
    evaluate.add_argument(
        "--eval", required=True, help="comma-separated evaluation sets (ir_datasets ids or BEIR folders)"
    )
    evaluate.add_argument(
        "--replace", action="store_true", help="evaluate a set the results already hold again, replacing its rows"
    )
    evaluate.add_argument(
        "--max-eval-queries",
        type=positive_int,
        default=None,
        help="evaluate on the first N judged queries by id (default: a run's own limit, else all)",
    )
    evaluate.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: a run's own, else auto)")
    evaluate.add_argument(
        "--precision", default=None, choices=["auto", "fp32", "bf16", "fp16"], help="default: a run's own, else auto"
    )
    evaluate.add_argument(
        "--inference-engine",
        default=None,
        choices=["auto", "torch", "openvino"],  # benchmark.encoder.INFERENCE_ENGINES (not imported: torch)
        help="default: a run's own, else auto (see `run --help`)",
    )
    evaluate.add_argument("--cache-dir", type=Path, default=None, help="BM25 and initial-encoder indexes")
    evaluate.add_argument("--country", default=None, help="codecarbon's country (default: a run's own, else USA)")
    evaluate.add_argument("--no-energy", action="store_true", help="do not run codecarbon")
    model = evaluate.add_argument_group("a model only (a run is evaluated in place, against its own initial encoder)")
    model.add_argument(
        "--baseline",
        default=None,
        help="the initial encoder, the reference of the significance tests (default: "
        "sentence-transformers/all-MiniLM-L6-v2)",
    )
    model.add_argument("--pooling", default=None, choices=["auto", "mean", "cls", "pooler"], help="default: auto")
    model.add_argument("--similarity", default=None, choices=["cosine", "dot"], help="default: cosine")
    model.add_argument("--max-query-length", type=positive_int, default=None, help="default: 64, as in run")
    model.add_argument("--max-doc-length", type=positive_int, default=None, help="default: 256, as in run")
    model.add_argument("--out", type=Path, default=None, help="where the evaluation folder goes (default: results/)")
    model.add_argument("--run-id", default=None, help="the evaluation folder's name (default: eval-<timestamp>)")


def add_shared_options(run: argparse.ArgumentParser) -> None:
    what = run.add_argument_group("seeds, reference and claims")
    what.add_argument("--seeds", "--seed", type=seeds, default=(42,), help="one seed or a list (default: 42)")
    what.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="data efficiency: test nDCG@10 within this of the reference at fraction 1.0 (default: 0.01)",
    )
    what.add_argument(
        "--reference",
        default="teacher-distillation",
        help="regime (name or label) the speedups are measured against (default: teacher-distillation)",
    )
    what.add_argument(
        "--reference-fraction",
        type=fraction_or_none,
        default=1.0,
        help="also train the reference at this fraction (its full budget), for claim 1 and the speedups against "
        "full data; 'none' skips it (default: 1.0)",
    )
    what.add_argument(
        "--equivalence-margin",
        type=margin,
        default=0.02,
        help="claim 1: self-distillation counts as matching the reference when a paired TOST shows the nDCG@10 "
        "difference within this margin (default: 0.02, see README)",
    )
    what.add_argument(
        "--tune",
        action="append",
        default=[],
        metavar="SPEC",
        help="one more system: a regime searched over a grid on validation, e.g. "
        "'self-distillation:target=0.1|0.2|0.3' or 'teacher-distillation:learning_rate=1e-5|2e-5' (training settings "
        "or regime parameters; several keys: their product); the whole search is charged to it as phase 'tune'. "
        "Repeat the option or separate specs with ';'",
    )
    what.add_argument(
        "--evaluate-all",
        action="store_true",
        help="also evaluate every --tune point on the test sets (rows of their own; selection stays on validation)",
    )
    data = run.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default="beir/scifact",
        help="ir_datasets id or BEIR folder to train on (default: beir/scifact)",
    )
    data.add_argument(
        "--eval",
        default=None,
        help="comma-separated evaluation sets (ids or BEIR folders; default: the dataset's test split)",
    )
    data.add_argument("--validation-fraction", type=float, default=0.1)
    data.add_argument(
        "--validation-depth",
        type=positive_int,
        default=5,
        help="validation corpus: BM25 and initial-encoder top-k of each held-out query (default: 5)",
    )
    data.add_argument(
        "--validation-random-documents",
        type=nonnegative_int,
        default=300,
        help="validation corpus: a seeded random sample of this many other documents (default: 300)",
    )
    data.add_argument(
        "--validation-whole-corpus-up-to",
        type=nonnegative_int,
        default=1000,
        help="validate on the whole corpus when it has at most this many documents (default: 1000)",
    )
    data.add_argument("--negatives-per-positive", type=positive_int, default=4)
    data.add_argument("--mining-depth", type=positive_int, default=100)
    data.add_argument("--max-train-triples", type=positive_int, default=None)
    data.add_argument("--max-eval-queries", type=positive_int, default=None)
    data.add_argument(
        "--max-validation-queries",
        type=positive_int,
        default=None,
        help="validate on at most this many of the held-out queries (default: all; all are held out of training)",
    )
    model = run.add_argument_group("encoder")
    model.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    model.add_argument("--pooling", default="auto", choices=["auto", "mean", "cls", "pooler"])
    model.add_argument("--similarity", default="cosine", choices=["cosine", "dot"])
    model.add_argument("--max-query-length", type=positive_int, default=64)
    model.add_argument("--max-doc-length", type=positive_int, default=256)
    model.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    model.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    model.add_argument(
        "--inference-engine",
        default="auto",
        choices=["auto", "torch", "openvino"],  # benchmark.encoder.INFERENCE_ENGINES (not imported: torch)
        help="what computes inference embeddings (evaluation, validation, teachers): auto is OpenVINO on a CPU in "
        "fp32 or bf16 when it is installed, else PyTorch; training is always PyTorch",
    )
    model.add_argument(
        "--dropout",
        type=float,
        default=None,
        help="override the hidden-state dropout probability while training (default: the model's own)",
    )
    model.add_argument(
        "--attention-dropout",
        type=probability_or_model,
        default=0.0,
        help="dropout on attention probabilities while training; 'model' keeps the model's own (default: 0, which "
        "lets PyTorch use its fused attention kernel: a CPU training step takes about half the time)",
    )
    loop = run.add_argument_group("training loop (the same for every regime)")
    loop.add_argument("--batch-size", type=positive_int, default=32)
    loop.add_argument(
        "--learning-rate", type=learning_rate, default=2e-5, help="default 2e-5; 0 trains nothing (a negative control)"
    )
    loop.add_argument("--weight-decay", type=float, default=0.01)
    loop.add_argument("--warmup-ratio", type=float, default=0.1)
    loop.add_argument("--schedule", default="linear", choices=["linear", "cosine", "constant_with_warmup"])
    loop.add_argument("--epochs", type=positive_int, default=1)
    spacing = loop.add_mutually_exclusive_group()
    spacing.add_argument(
        "--validations",
        type=positive_int,
        default=8,
        help="validations per run, evenly spaced over its examples, the last at its end; the initial weights are "
        "a candidate besides (default: 8)",
    )
    spacing.add_argument(
        "--validate-every-examples",
        type=positive_int,
        default=None,
        help="training examples between validations instead, and one at the end",
    )
    spacing.add_argument(
        "--validate-every",
        type=positive_int,
        default=None,
        metavar="STEPS",
        help="steps between validations instead of --validate-every-examples",
    )
    loop.add_argument(
        "--patience",
        type=positive_int,
        default=3,
        help="validations without improvement (over the best so far, the initial weights included) before "
        "stopping early (default: 3)",
    )
    out = run.add_argument_group("output and measurement")
    out.add_argument("--out", type=Path, default=Path("results"))
    out.add_argument("--run-id", default=None)
    out.add_argument(
        "--resume",
        metavar="RUN_ID",
        default=None,
        help="continue the interrupted run <out>/RUN_ID with its own options: finished cells are loaded, not "
        "retrained; a cell cut off mid-training is trained again from scratch (rerunning the same command does "
        "the same)",
    )
    out.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep every validated checkpoint under cells/<cell>/checkpoints/ (default: only the selected one)",
    )
    out.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="mined triples and BM25 indexes (default: ~/.cache/dense-regime-benchmark)",
    )
    out.add_argument("--country", default="USA", help="ISO 3166 alpha-3 code for codecarbon's carbon intensity")
    out.add_argument("--no-energy", action="store_true", help="do not run codecarbon")
    out.add_argument(
        "--log-with",
        type=trackers,
        default=(),
        metavar="TRACKER[,TRACKER]",
        help="also log per-step loss and learning rate, per-validation nDCG@10, per-phase costs and the config to "
        "tensorboard (files under <out>/<run-id>/tracking/), wandb or mlflow, through accelerate (default: none)",
    )


def quiet_libraries() -> None:
    """Keep the console for our tables and bars: silence libraries' progress bars and info logging."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)  # ir_datasets resets its loggers to INFO; our own errors say what failed
    for name in ("ir_datasets", "codecarbon", "pyterrier", "transformers", "sentence_transformers", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def list_regimes() -> int:
    from rich.table import Table

    from benchmark.common.progress import console
    from regimes import REGISTRY
    from regimes.base import format_value

    table = Table(title="Regimes (select variants with --regimes name:key=value,...)")
    for column in ("regime", "parameter", "default", "meaning"):
        table.add_column(column)
    for name in sorted(REGISTRY):
        regime = REGISTRY[name]
        table.add_row(f"[bold]{name}[/bold]", "", "", regime.description)
        for parameter in regime.parameters:
            table.add_row("", parameter.name, format_value(parameter.default), parameter.help)
    console.print(table)
    return 0


def resumed_argv(args: argparse.Namespace, argv: list[str]) -> list[str]:
    """``--resume <run-id>``: that run's stored command with the options given now after it (argparse lets a later
    option win), so ``run --resume <id>`` alone continues it and a changed option is refused as a change."""
    from benchmark.common.files import read_json

    if args.run_id is not None and args.run_id != args.resume:
        raise UsageError(f"--run-id {args.run_id} and --resume {args.resume} name different runs; give one")
    path = args.out / args.resume / "manifest.json"
    if not path.exists():
        raise UsageError(
            f"no run {args.resume!r} to resume in {args.out} (no manifest.json there); pass the --out it was written to"
        )
    try:
        stored = list(read_json(path).get("command", []))[3:]  # after "python -m benchmark"
    except ValueError:
        raise UsageError(f"{path} is not readable JSON; this run cannot be resumed") from None
    if not stored:
        raise UsageError(f"{path} names no command; this run cannot be resumed")
    if stored[0] != args.command:
        raise UsageError(f"run {args.resume} was started by `{stored[0]}`; resume it with `{stored[0]} --resume`")
    return [*stored, *argv[argv.index(args.command) + 1 :]]


def run_command(args: argparse.Namespace, argv: list[str]) -> int:
    if args.resume:
        argv = resumed_argv(args, argv)
        args = build_parser().parse_args(argv)
    config, regimes = run_config(args)
    check_before_any_work(config, regimes)
    from benchmark.run.runner import run  # PyTerrier, pyterrier-dr and sentence-transformers: seconds to import

    return run(config, regimes, argv)


def run_config(args: argparse.Namespace) -> tuple:
    """The run's configuration and regimes from the parsed options: ``reproduce``'s presets (cells, seeds, static
    search, evaluation sets) or ``run``'s grid."""
    from benchmark.encoder import EncoderConfig
    from benchmark.run.config import DataConfig, RunConfig, parse_regimes, with_reference_fraction
    from benchmark.training.loop import TrainingConfig
    from benchmark.training.tuning import parse_spec, parse_specs

    if args.command == "reproduce":
        regimes = parse_regimes(f"self-distillation,{args.reference}")
        by_regime = ((regimes[0].label, args.self_distillation_fractions), (regimes[1].label, args.curve))
        fractions_all = tuple(sorted({*args.self_distillation_fractions, *args.curve}))
    else:
        regimes = parse_regimes(args.regimes)
        by_regime, fractions_all = (), args.data_fraction
    tune = list(args.tune)
    if args.command == "reproduce" and args.static_search.strip().lower() != "none":
        parse_spec(args.static_search, option="--static-search")  # refused under the name the user typed
        tune.insert(0, args.static_search)
    specs = parse_specs(tune)
    if args.command == "reproduce":  # a tuned regime is trained where reproduce trains that regime
        curves = {"self-distillation": args.self_distillation_fractions, regimes[1].name: args.curve}
        by_regime += tuple((spec.label, curves[spec.regime]) for spec in specs if spec.regime in curves)
    labels = tuple(regime.label for regime in regimes)
    by_regime = with_reference_fraction(
        by_regime,
        labels,
        {regime.label: regime.name for regime in regimes},
        fractions_all,
        args.reference,
        args.reference_fraction,
    )
    seeds_by_cell = ()
    evaluation = tuple(s.strip() for s in (args.eval or "").split(",") if s.strip())
    if args.command == "reproduce":
        seeds_by_cell = reproduce_seeds(args, dict(by_regime), regimes[1].label, specs)
        if not evaluation:  # in domain and out of domain
            from benchmark.data.collections import default_evaluation

            evaluation = (default_evaluation(args.dataset), OUT_OF_DOMAIN)
    if args.learning_rate == 0:
        from benchmark.common.progress import say

        say(NO_LEARNING)
    config = RunConfig(
        regimes=labels,
        data_fractions=fractions_all,
        fractions_by_regime=by_regime,
        seeds_by_cell=seeds_by_cell,
        seeds=args.seeds,
        tolerance=args.tolerance,
        equivalence_margin=args.equivalence_margin,
        reference_fraction=args.reference_fraction,
        data=DataConfig(
            dataset=args.dataset,
            evaluation=evaluation,
            validation_fraction=args.validation_fraction,
            validation_depth=args.validation_depth,
            validation_random_documents=args.validation_random_documents,
            validation_whole_corpus_up_to=args.validation_whole_corpus_up_to,
            negatives_per_positive=args.negatives_per_positive,
            mining_depth=args.mining_depth,
            max_train_triples=args.max_train_triples,
            max_eval_queries=args.max_eval_queries,
            max_validation_queries=args.max_validation_queries,
        ),
        encoder=EncoderConfig(
            model=args.model,
            pooling=args.pooling,
            similarity=args.similarity,
            max_query_length=args.max_query_length,
            max_doc_length=args.max_doc_length,
            precision=args.precision,
            device=args.device,
            inference_engine=args.inference_engine,
            dropout=args.dropout,
            attention_dropout=args.attention_dropout,
        ),
        training=TrainingConfig(
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            weight_decay=args.weight_decay,
            warmup_ratio=args.warmup_ratio,
            schedule=args.schedule,
            epochs=args.epochs,
            validations=args.validations,
            validate_every_examples=args.validate_every_examples,
            validate_every=args.validate_every,
            patience=args.patience,
        ),
        out=args.out,
        run_id=args.resume or args.run_id,
        cache_dir=args.cache_dir or Path.home() / ".cache" / "dense-regime-benchmark",
        reference=args.reference,
        country=args.country,
        energy=not args.no_energy,
        resume=args.resume is not None,
        keep_checkpoints=args.keep_checkpoints,
        tune=tuple(spec.label for spec in specs),
        evaluate_all=args.evaluate_all,
        log_with=args.log_with,
    )
    return config, regimes


def reproduce_seeds(
    args: argparse.Namespace, fractions: dict[str, tuple[float, ...]], reference: str, specs: list
) -> tuple[tuple[str, float, tuple[int, ...]], ...]:
    """``reproduce``: every seed for the claim cells (self-distillation at 0.135, the reference at its full
    budget); with ``--other-seeds first``, the first seed only for the reference's other curve points and the
    tuned systems (the static search)."""
    if args.other_seeds == "all" or len(args.seeds) == 1:
        return ()
    first = args.seeds[:1]
    full = args.reference_fraction if args.reference_fraction is not None else max(fractions.get(reference, (1.0,)))
    fewer = [(reference, f, first) for f in fractions.get(reference, ()) if f != full]
    fewer += [(spec.label, f, first) for spec in specs for f in fractions.get(spec.label, ())]
    return tuple(fewer)


def check_before_any_work(config, regimes) -> None:
    """A missing teacher model or score file, or tracker package, fails here, before the heavy imports and any data
    work (the runner checks again for callers that skip the CLI)."""
    from benchmark.common import network
    from benchmark.measurement import tracking

    tracking.check_installed(config.log_with)
    network.fail_fast_offline()  # a model id that would have to be downloaded then fails at once
    for regime in regimes:
        regime.check(config.encoder)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        quiet_libraries()
        if args.command == "list":
            return list_regimes()
        if args.command == "report":
            from benchmark.reporting.claims_report import rerender

            return rerender(args.run_dir, args.tolerance, args.equivalence_margin)
        if args.command == "compare":
            from benchmark.reporting.compare import compare

            return compare(args.run_dirs, args.out)
        if args.command == "evaluate":
            from benchmark.run.evaluate import evaluate  # PyTerrier and pyterrier-dr: seconds to import

            return evaluate(args, argv)
        return run_command(args, argv)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return UsageError.exit_status
    except KeyboardInterrupt as interrupt:
        where = interrupt.args[0] if interrupt.args else "files written so far are complete"
        print(f"interrupted: {where}", file=sys.stderr)
        return 130
