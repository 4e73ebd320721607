"""Run configuration: what a resume compares, and how a refused resume names what changed."""

from __future__ import annotations

from pathlib import Path

from benchmark.run.config import RESUME_FREE, RunConfig, comparable, differences
from benchmark.training.loop import TrainingConfig


def test_comparable_drops_only_what_a_resume_may_change():
    """Output place, run id, cache, --resume and --keep-checkpoints may differ; every other setting is compared."""
    config = RunConfig(regimes=("self-distillation",), out=Path("/a"), run_id="x", resume=True, keep_checkpoints=True)
    stored = comparable(config.as_dict())
    assert not RESUME_FREE & set(stored)
    assert stored["regimes"] == ["self-distillation"]  # JSON types, as read back from manifest.json
    assert stored["training"]["learning_rate"] == 2e-5
    moved = RunConfig(regimes=("self-distillation",), out=Path("/b"), run_id="y", cache_dir=Path("/c"))
    assert comparable(moved.as_dict()) == stored


def test_differences_name_the_nested_setting_and_both_values():
    """A changed learning rate is reported by its dotted name with the stored and the new value."""
    before = comparable(RunConfig(regimes=("self-distillation",)).as_dict())
    after = comparable(RunConfig(regimes=("self-distillation",), training=TrainingConfig(learning_rate=1e-3)).as_dict())
    assert differences(before, after) == ["training.learning_rate (2e-05 -> 0.001)"]
    assert differences(before, before) == []
    assert differences({"seeds": [1]}, {}) == ["seeds ([1] -> None)"]


def test_reference_is_also_trained_at_its_full_budget():
    """--reference-fraction 1.0 (default) adds the full budget to the reference (by label, else by name) only."""
    from benchmark.run.config import with_reference_fraction

    labels = ("self-distillation", "teacher-distillation:teacher=bm25")
    names = {"self-distillation": "self-distillation", "teacher-distillation:teacher=bm25": "teacher-distillation"}
    added = with_reference_fraction((), labels, names, (0.135,), "teacher-distillation", 1.0)
    assert added == (("teacher-distillation:teacher=bm25", (0.135, 1.0)),)
    assert with_reference_fraction((), labels, names, (0.135,), "teacher-distillation", None) == ()
    assert with_reference_fraction((), labels, names, (0.135, 1.0), "teacher-distillation", 1.0) == ()
    assert with_reference_fraction((), labels, names, (0.135,), "batch-sampling", 1.0) == ()  # not in the run
    preset = (("self-distillation", (0.135,)), ("teacher-distillation:teacher=bm25", (0.5,)))
    assert dict(with_reference_fraction(preset, labels, names, (0.135, 0.5), "teacher-distillation", 1.0)) == {
        "self-distillation": (0.135,),
        "teacher-distillation:teacher=bm25": (0.5, 1.0),
    }


def test_tune_specs_are_compared_on_resume_and_their_fractions_make_a_grid():
    """A changed --tune is a changed run; a tuned system at several fractions names its rows by fraction."""
    plain = RunConfig(regimes=("self-distillation",))
    tuned = RunConfig(regimes=("self-distillation",), tune=("self-distillation:target=0.1|0.2",))
    assert differences(comparable(plain.as_dict()), comparable(tuned.as_dict())) == [
        "tune ([] -> ['self-distillation:target=0.1|0.2'])"
    ]
    label = "self-distillation:target=0.1|0.2"
    assert not tuned.is_grid
    assert RunConfig(regimes=("self-distillation",), tune=(label,), fractions_by_regime=((label, (0.5, 1.0)),)).is_grid


def test_a_cell_may_train_fewer_seeds_than_the_run():
    config = RunConfig(regimes=("a", "b"), seeds=(1, 2, 3), seeds_by_cell=(("b", 0.5, (1,)),))
    assert config.seeds_for("a", 0.5) == (1, 2, 3)
    assert config.seeds_for("b", 1.0) == (1, 2, 3)
    assert config.seeds_for("b", 0.5) == (1,)


def test_a_stored_config_reads_back_as_the_config_that_was_stored():
    """`evaluate` rebuilds a finished run's settings from manifest.json: tuples, nested settings and paths come back
    equal, and a key another version of the toolkit stored is left out rather than refused."""
    import json

    from benchmark.encoder import EncoderConfig
    from benchmark.run.config import DataConfig, from_stored

    config = RunConfig(
        regimes=("self-distillation", "teacher-distillation"),
        data_fractions=(0.135, 1.0),
        seeds=(1, 2),
        fractions_by_regime=(("teacher-distillation", (0.135, 1.0)),),
        seeds_by_cell=(("teacher-distillation", 0.135, (1,)),),
        data=DataConfig(dataset="beir/scifact", evaluation=("beir/scifact/test", "vaswani"), max_eval_queries=5),
        encoder=EncoderConfig(precision="fp32", max_doc_length=32),
        training=TrainingConfig(learning_rate=3e-3),
        out=Path("/runs"),
        cache_dir=Path("/cache"),
        tune=("self-distillation:target=0.2|0.6",),
    )
    stored = json.loads(json.dumps(config.as_dict(), default=str))
    assert from_stored(stored) == config
    stored["encoder"]["a_later_setting"] = 1
    stored["a_later_option"] = True
    assert from_stored(stored) == config
    assert from_stored(stored).seeds_for("teacher-distillation", 0.135) == (1,)
