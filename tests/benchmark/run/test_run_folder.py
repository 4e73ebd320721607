"""Which folder a run writes to: a new one, or the unfinished run it continues, with the same configuration only."""

from __future__ import annotations

import pytest

from benchmark.common.errors import UsageError
from benchmark.common.files import write_json
from benchmark.run.config import RunConfig
from benchmark.run.run_folder import open_run_folder
from benchmark.training.loop import TrainingConfig


def config_for(out, **overrides) -> RunConfig:
    return RunConfig(regimes=("self-distillation",), out=out, **overrides)


def earlier_run(out, run_id: str, config: RunConfig, state: str = "running", **extra) -> None:
    """What an earlier attempt leaves: its manifest (and, here, one finished-cell marker)."""
    write_json(out / run_id / "manifest.json", {"run_id": run_id, "state": state, "config": config.as_dict(), **extra})
    write_json(out / run_id / "cells" / "c" / "cell.json", {"cell": "c"})


def test_a_new_run_gets_a_locked_folder(tmp_path):
    """A second process cannot write into a run that is in progress; once it ends, the folder is free again."""
    folder = open_run_folder(config_for(tmp_path, run_id="mine"))
    assert folder.directory == tmp_path / "mine" and folder.created and not folder.resumed
    write_json(tmp_path / "mine" / "manifest.json", {"config": config_for(tmp_path).as_dict()})
    with pytest.raises(UsageError, match="in progress in another process"):
        open_run_folder(config_for(tmp_path, run_id="mine", resume=True))
    folder.close()
    again = open_run_folder(config_for(tmp_path, run_id="mine", resume=True))
    assert again.resumed
    again.close()


def test_resume_needs_the_run_and_the_same_configuration(tmp_path):
    """--resume of a missing run says where it looked; of another configuration, names the setting that changed."""
    with pytest.raises(UsageError, match=r"no run 'gone' to resume in .*pass the --out"):
        open_run_folder(config_for(tmp_path, run_id="gone", resume=True))
    earlier_run(tmp_path, "mine", config_for(tmp_path))
    changed = config_for(tmp_path, run_id="mine", resume=True, training=TrainingConfig(learning_rate=1e-3))
    with pytest.raises(UsageError, match=r"another configuration \(training.learning_rate \(2e-05 -> 0.001\)\)"):
        open_run_folder(changed)
    folder = open_run_folder(config_for(tmp_path / ".", run_id="mine", resume=True, keep_checkpoints=True))
    assert folder.resumed and not folder.created and folder.stored["state"] == "running"
    folder.close()


def test_rerunning_the_same_run_id_continues_an_unfinished_run(tmp_path):
    """The same --run-id and configuration continue the run; a finished one or another configuration is refused."""
    earlier_run(tmp_path, "mine", config_for(tmp_path))
    folder = open_run_folder(config_for(tmp_path, run_id="mine"))
    assert folder.resumed
    folder.close()
    with pytest.raises(UsageError, match="already holds results"):
        open_run_folder(config_for(tmp_path, run_id="mine", seeds=(1,)))
    earlier_run(tmp_path, "done", config_for(tmp_path), state="finished")
    with pytest.raises(UsageError, match="already holds a finished run; pass --resume done"):
        open_run_folder(config_for(tmp_path, run_id="done"))


def test_without_run_id_the_unfinished_run_of_the_same_configuration_continues(tmp_path):
    """Rerunning the same command (same --out and options, no --run-id) finds the interrupted run."""
    earlier_run(tmp_path, "20240101-000000", config_for(tmp_path), state="finished")
    earlier_run(tmp_path, "20240102-000000", config_for(tmp_path, seeds=(7,)))
    assert not (open_run_folder(config_for(tmp_path)).resumed)  # neither finished nor other settings are continued
    earlier_run(tmp_path, "20240103-000000", config_for(tmp_path))
    folder = open_run_folder(config_for(tmp_path))
    assert folder.directory.name == "20240103-000000" and folder.resumed
    busy = open_run_folder(config_for(tmp_path))  # that one is locked now: a new run starts beside it
    assert busy.directory.name != "20240103-000000" and not busy.resumed


def test_a_folder_with_other_files_is_not_overwritten(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "results.csv").write_text("precious")
    with pytest.raises(UsageError, match="already holds results"):
        open_run_folder(config_for(tmp_path, run_id="mine"))
    assert (tmp_path / "mine" / "results.csv").read_text() == "precious"


def test_a_resumed_run_must_train_on_the_same_device_and_precision(tmp_path):
    earlier_run(tmp_path, "mine", config_for(tmp_path), device="cpu", precision="bf16")
    folder = open_run_folder(config_for(tmp_path, run_id="mine", resume=True))
    folder.check_machine("cpu", "bf16")
    with pytest.raises(UsageError, match="trained with precision bf16 and this one would use fp32"):
        folder.check_machine("cpu", "fp32")
    folder.close()
