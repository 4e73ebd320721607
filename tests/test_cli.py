"""Bad input through the real CLI: one line naming the problem and the fix, exit status 2, nothing damaged."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.no_network import block_network


def cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        cwd=cwd,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_list_shows_every_regime_with_its_parameters():
    """`list` is how a user discovers regimes and their defaults."""
    result = cli("list")
    assert result.returncode == 0
    for expected in ("self-distillation", "target", "adaptive", "in_batch", "error", "l2"):
        assert expected in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--regimes", "nope"], ["unknown regime 'nope'", "benchmark list"]),
        (["--regimes", "self-distillation:colour=red"], ["no parameter 'colour'"]),
        (["--regimes", "self-distillation:error=l3"], ["error='l3'"]),
        (["--regimes", "self-distillation:target=distributed"], ["in_batch=false"]),
        (["--data-fraction", "1.5"], ["outside (0, 1]"]),
        (["--data-fraction", "0"], ["outside (0, 1]"]),
        (["--data-fraction", "abc"], ["not a number"]),
        (["--bogus"], ["unrecognized arguments", "--help"]),
        (["--tune", "self-distillation:target=0.1|0.2;self-distillation:speed=1|2"], ["--tune", "'speed'"]),
        (["--tune", "teacher-distillation:learning_rate=1e-5"], ["--tune", "one point"]),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, words, tmp_path):
    result = cli("run", *args, "--out", str(tmp_path / "out"))
    assert_one_line_error(result, *words)
    assert not (tmp_path / "out").exists()


def test_unknown_dataset_id(tmp_path):
    result = cli("run", "--dataset", "no-such/dataset", "--out", str(tmp_path), "--no-energy")
    assert_one_line_error(result, "unknown dataset 'no-such/dataset'")


def test_folder_not_in_beir_layout(tmp_path):
    folder = tmp_path / "not-beir"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("")
    result = cli("run", "--dataset", str(folder), "--out", str(tmp_path / "out"), "--no-energy")
    assert_one_line_error(result, "not a BEIR folder", "queries.jsonl")


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    result = cli("run", "--out", str(blocker), "--no-energy")
    assert_one_line_error(result, "cannot write results", "--out")
    assert blocker.read_text() == "keep me"


def test_existing_run_is_not_overwritten(tmp_path):
    run = tmp_path / "out" / "mine"
    run.mkdir(parents=True)
    (run / "results.csv").write_text("precious")
    result = cli("run", "--out", str(tmp_path / "out"), "--run-id", "mine", "--no-energy")
    assert_one_line_error(result, "already holds results")
    assert (run / "results.csv").read_text() == "precious"


def test_dataset_missing_offline_fails_fast(tmp_path):
    """With no network and no local copy, ir_datasets cannot download: a clear line, never a hang."""
    result = cli(
        "run",
        "--out",
        str(tmp_path / "out"),
        "--no-energy",
        env={"IR_DATASETS_HOME": str(tmp_path / "empty-home")},
    )
    assert_one_line_error(result, "IR_DATASETS_HOME")


def test_unknown_model(tmp_path, ir_datasets_home):
    result = cli(
        "run",
        "--model",
        str(tmp_path / "no-model-here"),
        "--out",
        str(tmp_path / "out"),
        "--no-energy",
        "--cache-dir",
        str(tmp_path / "cache"),
        env={"IR_DATASETS_HOME": str(ir_datasets_home)},
    )
    assert_one_line_error(result, "could not be loaded", "local Hugging Face folder")


def test_missing_teacher_is_refused_before_any_data_work(tmp_path, ir_datasets_home):
    """A teacher model that cannot be loaded stops the default SciFact run at start-up (it used to surface after
    data preparation, mining and the initial validation, about a minute in), and leaves no run folder."""
    started = time.monotonic()
    result = cli(
        "run",
        "--regimes",
        "teacher-distillation:teacher=cross-encoder:/nope",
        "--out",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
        env={"IR_DATASETS_HOME": str(ir_datasets_home)},
    )
    elapsed = time.monotonic() - started
    assert_one_line_error(result, "teacher cross-encoder '/nope' could not be loaded")
    assert elapsed < 15, f"took {elapsed:.1f} s"  # checked before the heavy imports: about 9 s here
    assert not (tmp_path / "cache").exists()  # nothing was mined or indexed
    assert not any((tmp_path / "out").glob("*"))


# --- reliability: a killed run resumes to the uninterrupted results; no network fails fast --------------------
TINY_RUN = [
    "--regimes",
    "all",
    "--data-fraction",
    "1.0",
    "--precision",
    "fp32",
    "--device",
    "cpu",
    "--max-doc-length",
    "32",
    "--max-query-length",
    "16",
    "--batch-size",
    "2",
    "--validate-every",
    "2",
    "--negatives-per-positive",
    "2",
    "--learning-rate",
    "3e-3",  # large enough that every regime moves the tiny model's metrics
    "--no-energy",
]
# Costs and timings differ between two runs by nature; everything else in results.csv must not.
TIMING_COLUMNS = {"run_id", "train_wall_to_best_s", "reused_phases"} | {
    f"{prefix}{name}"
    for prefix in ("charged_", "speedup_")
    for name in (
        "wall_s",
        "cpu_s",
        "gpu_hours",
        "energy_kwh",
        "co2_kg",
        "wall",
        "energy",
        "wall_vs_full",
        "energy_vs_full",
    )
}

# The real CLI, with each training step of one regime slowed down and announced in a marker file, so the test
# kills the run while that regime trains, whatever the machine's speed.
SLOW_REGIME_CLI = """
import sys, time
from pathlib import Path
import benchmark.training.loop as training

marker, slow_label, original = Path(sys.argv[1]), sys.argv[2], training.train

def train(*args, **kwargs):
    if kwargs["charged_to"] == slow_label:
        advance = kwargs["on_step"]
        def on_step(n):
            marker.write_text("training")
            time.sleep(0.5)
            advance(n)
        kwargs["on_step"] = on_step
    return original(*args, **kwargs)

training.train = train
from benchmark.run.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory) -> tuple[list[str], dict]:
    """A tiny random BERT, a tiny BEIR folder, a private ir_datasets home and cache: CLI arguments and env."""
    from tests.benchmark.conftest import write_beir
    from tests.tiny import save_tiny_bert

    base = tmp_path_factory.mktemp("tiny-cli")
    model = save_tiny_bert(base / "bert")
    folder = write_beir(base / "beir")
    arguments = [*TINY_RUN, "--dataset", str(folder), "--model", str(model), "--cache-dir", str(base / "cache")]
    return arguments, {"IR_DATASETS_HOME": str(base / "ir_datasets"), "OMP_NUM_THREADS": "1"}


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def finished_cells(run: Path) -> dict[str, Path]:
    """Cell id -> folder, for the cells with a completion marker."""
    done = [folder for folder in (run / "cells").glob("*") if (folder / "cell.json").exists()]
    return {json.loads((folder / "cell.json").read_text())["cell"]: folder for folder in done}


def files_under(folders, root: Path) -> dict[Path, bytes]:
    return {path.relative_to(root): path.read_bytes() for f in folders for path in f.rglob("*") if path.is_file()}


def test_killed_run_resumes_to_the_uninterrupted_results(tiny_setup, tmp_path):
    """SIGKILL while the second regime trains; `--resume` keeps the first regime's cell as it was, trains the cut-off
    one again from scratch and ends with the results, curves and models of an uninterrupted run (timings aside)."""
    arguments, env = tiny_setup
    # a rate at which some regime validates a gain on this tiny data, so the results are a real comparison (at
    # TINY_RUN's 3e-3 every regime keeps the initial weights with this seed's dropout draws)
    arguments = [*arguments, "--learning-rate", "1e-3"]
    out = tmp_path / "out"
    marker = tmp_path / "second-regime-trains"
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", SLOW_REGIME_CLI, str(marker), "self-distillation", "run", *arguments]
            + ["--out", str(out), "--run-id", "killed"],
            env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 120
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    killed = out / "killed"
    assert marker.exists(), (tmp_path / "killed.log").read_text()[-3000:]
    assert process.returncode == -signal.SIGKILL
    first = finished_cells(killed)
    assert list(first) == ["batch-sampling|f=1.0|seed=42"]  # the second regime was cut off mid-training
    assert not (killed / "results.csv").exists()
    before = files_under(first.values(), killed)
    model_before = (killed / "models" / "batch-sampling" / "model.safetensors").read_bytes()

    resumed = cli("run", "--resume", "killed", "--out", str(out), env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    said = " ".join(resumed.stderr.split())  # rich wraps long lines
    assert "batch-sampling|f=1.0|seed=42: finished by an earlier attempt; loaded, not retrained" in said
    assert "self-distillation|f=1.0|seed=42: cut off mid-training by an earlier attempt; training it again" in said
    assert "Training batch-sampling" not in said
    assert files_under(first.values(), killed) == before  # the first regime's finished cell is untouched
    assert (killed / "models" / "batch-sampling" / "model.safetensors").read_bytes() == model_before

    whole = cli("run", *arguments, "--out", str(out), "--run-id", "whole", env=env)
    assert whole.returncode == 0, whole.stderr[-3000:]
    resumed_rows, whole_rows = read_rows(killed / "results.csv"), read_rows(out / "whole" / "results.csv")
    assert {row["system"] for row in resumed_rows} == {
        "bm25",
        "initial",
        "teacher:ensemble:bm25+bi-encoder:sentence-transformers/all-MiniLM-L6-v2",
        "batch-sampling",
        "self-distillation",
        "teacher-distillation",
    }
    assert all(row["status"] == "ok" for row in resumed_rows)
    for mine, theirs in zip(resumed_rows, whole_rows, strict=True):
        assert {k: v for k, v in mine.items() if k not in TIMING_COLUMNS} == {
            k: v for k, v in theirs.items() if k not in TIMING_COLUMNS
        }
    assert len({row["nDCG@10"] for row in resumed_rows}) > 2  # the regimes moved the metrics: a real comparison

    def curves(run: Path) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in read_rows(run / "curves.csv")]

    assert curves(killed) == curves(out / "whole")
    for regime in ("batch-sampling", "self-distillation", "teacher-distillation"):
        weights = Path("models") / regime / "model.safetensors"
        assert (killed / weights).read_bytes() == (out / "whole" / weights).read_bytes(), regime
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["state"] == "finished" and len(manifest["attempts"]) == 2
    assert "from scratch" in manifest["cells"]["self-distillation|f=1.0|seed=42"]


REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("model", ["model 'some-org/not-on-this-machine' could not be loaded", "local Hugging Face folder"]),
        ("dataset", ["beir/scifact", "IR_DATASETS_HOME"]),
        ("teacher", ["teacher cross-encoder 'some-org/not-a-cached-teacher' could not be loaded", "local folder"]),
    ],
)
def test_no_network_fails_fast_naming_what_is_missing(case, words, tiny_setup, tmp_path):
    """With every connection refused and nothing cached, a model, a dataset or a teacher that would have to be
    downloaded stops the run within 30 s, on one line saying what is missing and how to provide it
    (codecarbon's tracker runs too: energy is measured in these runs)."""
    arguments, env = tiny_setup
    blocker = block_network(tmp_path / "no-network")
    offline = {k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}}
    offline.update(
        env,
        PYTHONPATH=str(blocker),
        HF_HOME=str(tmp_path / "empty-hf-home"),
        IR_DATASETS_HOME=str(tmp_path / "empty-ir-datasets-home"),
    )
    tiny = [a for a in arguments if a != "--no-energy"]
    options = {
        "model": [*tiny, "--model", "some-org/not-on-this-machine"],
        "dataset": ["--max-eval-queries", "5"],
        "teacher": [*tiny, "--regimes", "teacher-distillation:teacher=cross-encoder:some-org/not-a-cached-teacher"],
    }[case]
    if case == "teacher":
        offline["IR_DATASETS_HOME"] = env["IR_DATASETS_HOME"]  # the tiny folder's docstore may live there
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "benchmark", "run", *options, "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        env=offline,
        cwd=REPO,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for word in words:
        assert word in last, last
    assert elapsed < 30, f"took {elapsed:.1f} s"


def test_resume_of_a_missing_run_or_another_configuration_is_refused(tmp_path):
    """--resume finds the run under --out; a changed option is named, and the stored run is left as it was."""
    result = cli("run", "--resume", "nope", "--out", str(tmp_path))
    assert_one_line_error(result, "no run 'nope' to resume", "--out")
    run = tmp_path / "mine"
    run.mkdir()
    stored = {
        "run_id": "mine",
        "state": "running",
        "command": ["python", "-m", "benchmark", "run", "--seeds", "7", "--no-energy"],
        "config": {"seeds": [7]},
    }
    (run / "manifest.json").write_text(json.dumps(stored))
    result = cli("run", "--resume", "mine", "--out", str(tmp_path), "--learning-rate", "0.1")
    assert_one_line_error(result, "run mine was made with another configuration", "--run-id")
    assert json.loads((run / "manifest.json").read_text()) == stored
    assert sorted(p.name for p in run.iterdir()) == ["manifest.json"]


def test_malformed_input_through_the_cli_names_file_and_line(tiny_setup, tmp_path):
    """One line, exit status 2, and an earlier run in the same --out untouched."""
    arguments, env = tiny_setup
    folder = Path(arguments[arguments.index("--dataset") + 1])
    broken = shutil.copytree(folder, tmp_path / "broken")
    with open(broken / "queries.jsonl", "a") as stream:
        stream.write('{"_id": "q9", "text": "an unfinished line\n')
    earlier = tmp_path / "out" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "results.csv").write_text("precious")
    result = cli("run", *arguments, "--dataset", str(broken), "--out", str(tmp_path / "out"), env=env)
    assert_one_line_error(result, f"{broken / 'queries.jsonl'}, line 9: not a JSON object")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["earlier"]
    assert (earlier / "results.csv").read_text() == "precious"


# --- several processes ------------------------------------------------------------------------------------------
def test_two_processes_consume_the_same_examples_as_one(tiny_setup, tmp_path):
    """`torchrun --nproc-per-node 2` (gloo on the CPU) trains every regime on the same budget as one process: the
    examples are reconciled over both processes and results.csv says how many trained."""
    arguments, env = tiny_setup
    out = tmp_path / "out"
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    two = subprocess.run(
        [*launcher, "-m", "benchmark", "run", *arguments, "--out", str(out), "--run-id", "two"],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = cli("run", *arguments, "--out", str(out), "--run-id", "one", env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    rows = {name: read_rows(out / name / "results.csv") for name in ("one", "two")}
    trained = {name: [row for row in table if row["examples_consumed"]] for name, table in rows.items()}
    assert [row["system"] for row in trained["two"]] == [row["system"] for row in trained["one"]]
    assert len(trained["two"]) == 3
    for single, double in zip(trained["one"], trained["two"], strict=True):
        assert double["examples_consumed"] == single["examples_consumed"] == single["examples_budget"]
        assert (single["processes"], double["processes"]) == ("1", "2")
        assert double["status"] == "ok"
    manifest = json.loads((out / "two" / "manifest.json").read_text())
    assert "processes" in json.dumps(manifest)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--learning-rate", "-1"], ["not a learning rate >= 0"]),
        (["--learning-rate", "x"], ["not a number"]),
        (["--equivalence-margin", "0"], ["outside (0, 1)"]),
        (["--reference-fraction", "2"], ["outside (0, 1]"]),
    ],
)
def test_verdict_options_refuse_bad_values_in_one_line(args, words):
    """Checked by the parser, before any work (in-process: no subprocess needed)."""
    from benchmark.common.errors import UsageError
    from benchmark.run.cli import build_parser

    with pytest.raises(UsageError) as error:
        build_parser().parse_args(["run", *args])
    assert all(word in str(error.value) for word in words) and "\n" not in str(error.value)


def test_verdict_options_accept_zero_learning_rate_and_no_reference_fraction():
    from benchmark.run.cli import build_parser

    args = build_parser().parse_args(["run", "--learning-rate", "0", "--reference-fraction", "none"])
    assert args.learning_rate == 0 and args.reference_fraction is None and args.equivalence_margin == 0.02


# --- tuning -----------------------------------------------------------------------------------------------------
def test_tuned_teacher_distillation_selects_on_validation_and_charges_its_search(tiny_setup, tmp_path):
    """`--tune "teacher-distillation:learning_rate=1e-5|5e-5"`: both points trained on the same budget, the one best
    on validation is the tuned system's row, and its search (both points) is charged as one phase `tune`."""
    arguments, env = tiny_setup
    out = tmp_path / "out"
    label = "teacher-distillation:learning_rate=1e-5|5e-5"
    result = cli(
        "run",
        *arguments,
        "--regimes",
        "self-distillation",
        "--tune",
        label,
        "--out",
        str(out),
        "--run-id",
        "t",
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["system"]: row for row in read_rows(out / "t" / "results.csv")}
    tuned = rows[label]
    assert (tuned["regime"], tuned["regime_name"], tuned["tune_grid"], tuned["tune_points"]) == (
        label,
        "teacher-distillation",
        "learning_rate=1e-5|5e-5",
        "2",
    )
    cells = finished_cells(out / "t")
    points = {
        lr: json.loads(
            (cells[f"teacher-distillation:learning_rate={lr} (tune point)|f=1.0|seed=42"] / "cell.json").read_text()
        )
        for lr in ("1e-5", "5e-5")
    }
    best = max(points, key=lambda lr: points[lr]["outcome"]["best_validation"])  # max keeps the first on ties
    assert tuned["tune_selected"] == f"learning_rate={best}"
    assert float(tuned["best_validation_ndcg10"]) == points[best]["outcome"]["best_validation"]
    assert float(tuned["examples_consumed"]) == float(rows["self-distillation"]["examples_consumed"])  # same budget
    phases = read_rows(out / "t" / "phases.csv")
    [tune] = [p for p in phases if p["phase"] == "tune"]
    assert tune["charged_to"] == label and tune["aggregates"]
    assert float(tuned["tune_wall_s"]) == float(tune["wall_s"]) > float(tuned["charged_wall_s"]) > 0


# --- reproduce's presets ----------------------------------------------------------------------------------------
def test_reproduce_defaults_three_seeds_for_the_claim_cells_the_static_search_and_vaswani():
    """`reproduce`: self-distillation at 0.135 and the reference at 1.0 on 3 seeds, the reference's other curve
    points and the static-margin search (the paper's parametrized comparator) on the first, two evaluation sets."""
    from benchmark.run.cli import REPRODUCE_STATIC_GRID, build_parser, run_config

    config, regimes = run_config(build_parser().parse_args(["reproduce"]))
    assert [regime.label for regime in regimes] == ["self-distillation", "teacher-distillation"]
    assert config.seeds == (42, 43, 44)
    assert config.data.evaluation == ("beir/scifact/test", "vaswani")
    assert config.tune == (REPRODUCE_STATIC_GRID,)
    assert config.seeds_for("self-distillation", 0.135) == (42, 43, 44)
    assert config.seeds_for("teacher-distillation", 1.0) == (42, 43, 44)
    assert config.seeds_for("teacher-distillation", 0.135) == (42,)
    assert config.fractions_for(REPRODUCE_STATIC_GRID) == (0.135,)
    assert config.seeds_for(REPRODUCE_STATIC_GRID, 0.135) == (42,)


def test_reproduce_presets_can_be_widened_or_switched_off():
    from benchmark.run.cli import build_parser, run_config

    options = ["--other-seeds", "all", "--static-search", "none", "--eval", "beir/scifact/test", "--seeds", "1,2"]
    args = build_parser().parse_args(["reproduce", *options])
    config, _ = run_config(args)
    assert config.tune == () and config.seeds_by_cell == () and config.data.evaluation == ("beir/scifact/test",)
    assert config.seeds_for("teacher-distillation", 0.135) == (1, 2)


def test_a_bad_static_search_is_refused_under_its_own_name():
    """The static search is parsed like --tune, but the one-line error names the option the user typed."""
    from benchmark.common.errors import UsageError
    from benchmark.run.cli import build_parser, run_config

    args = build_parser().parse_args(["reproduce", "--static-search", "self-distillation:target=0.1"])
    with pytest.raises(UsageError, match=r"^--static-search 'self-distillation:target=0.1' has one point only"):
        run_config(args)


def test_reproduce_gives_both_claims_on_each_evaluation_set_with_the_static_search(tmp_path):
    """The real `reproduce` on tiny data: the claim cells on 2 seeds, the rest on the first, a 2-point static search,
    two evaluation sets; verdicts.csv has claim 1 and claim 2 for each set, the report the search and seed spread."""
    from tests.benchmark.conftest import write_beir
    from tests.tiny import save_tiny_bert

    model = save_tiny_bert(tmp_path / "bert")
    folder, other = write_beir(tmp_path / "beir"), write_beir(tmp_path / "other")
    result = cli(
        "reproduce",
        "--reference",
        f"teacher-distillation:teacher=bi-encoder:{model}",
        "--static-search",
        "self-distillation:target=0.2|0.6",
        "--seeds",
        "1,2",
        "--dataset",
        str(folder),
        "--eval",
        f"{folder},{other}",
        "--model",
        str(model),
        *TINY_RUN[4:],  # the tiny loop settings, without --regimes and --data-fraction
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "out"),
        "--run-id",
        "paper",
        env={"IR_DATASETS_HOME": str(tmp_path / "irds"), "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "out" / "paper"
    cells = {tuple(cell.rsplit("|", 2)) for cell in finished_cells(run)}
    reference = f"teacher-distillation:teacher=bi-encoder:{model}"
    assert {(name, f, s) for name, f, s in cells if "tune point" not in name} == {
        ("self-distillation", "f=0.135", "seed=1"),
        ("self-distillation", "f=0.135", "seed=2"),
        (reference, "f=1.0", "seed=1"),
        (reference, "f=1.0", "seed=2"),
        (reference, "f=0.135", "seed=1"),
    }
    assert sum("tune point" in name and s == "seed=1" for name, _, s in cells) == 2  # the search: first seed only
    verdicts = read_rows(run / "verdicts.csv")
    assert sorted((row["claim"], row["eval_set"]) for row in verdicts) == sorted(
        (claim, f"{path}:test") for claim in ("1", "2") for path in (folder, other)
    ), verdicts
    report = (run / "report.md").read_text()
    assert "target=0.2|0.6" in report and "seed spread" in report
