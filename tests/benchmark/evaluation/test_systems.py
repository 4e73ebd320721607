"""Significance markers of the results table: the sign of the mean difference to the baseline, and only when
the Holm-corrected paired t-test rejects."""

from __future__ import annotations

import pandas as pd
import pyterrier as pt
import pytest

from benchmark.evaluation.systems import experiment, significant

DOCUMENTS = [f"d{k}" for k in range(1, 13)]  # d1 is each query's one relevant document


def run(relevant_ranks: dict[str, int | None]) -> pt.Transformer:
    """A fixed run: for each query, d1 at the given 1-based rank among 11 other documents, or absent (None)."""
    rows = []
    for qid, where in relevant_ranks.items():
        others = DOCUMENTS[1:]
        order = others if where is None else others[: where - 1] + ["d1"] + others[where - 1 :]
        rows += [{"qid": qid, "docno": docno, "rank": k, "score": 100.0 - k} for k, docno in enumerate(order)]
    return pt.Transformer.from_df(pd.DataFrame(rows))


def test_a_system_winning_more_queries_but_worse_on_average_is_marked_minus(tmp_path):
    """12 queries a little better (RR 1/3 -> 1/2), 8 queries much worse (RR 1 -> 0): more wins than losses, a
    significantly lower mean. The marker follows the mean, so '-'; counting wins would say '+'."""
    wins = [f"w{k}" for k in range(12)]
    losses = [f"l{k}" for k in range(8)]
    baseline = run({**{q: 3 for q in wins}, **{q: 1 for q in losses}})
    system = run({**{q: 2 for q in wins}, **{q: None for q in losses}})
    better = run({**{q: 1 for q in wins}, **{q: 1 for q in losses}})  # better on the 12, equal on the 8
    queries = wins + losses
    topics = pd.DataFrame({"qid": queries, "query": [f"query {q}" for q in queries]})
    qrels = pd.DataFrame({"qid": queries, "docno": "d1", "label": 1})

    table = experiment(
        {"initial": baseline, "worse": system, "better": better}, topics, qrels, "initial", tmp_path / "runs"
    ).set_index("system")
    worse = table.loc["worse"]
    assert worse["RR@10 +"] == 12 and worse["RR@10 -"] == 8  # wins outnumber losses
    assert worse["RR@10 mean difference"] == pytest.approx((12 * (1 / 2 - 1 / 3) - 8) / 20)
    assert worse["RR@10 p-value corrected"] < 0.05
    assert significant(worse, "RR@10") == "-"
    assert significant(worse, "nDCG@10") == "-"
    assert significant(table.loc["better"], "RR@10") == "+"
    assert significant(table.loc["initial"], "RR@10") == ""  # the baseline against itself


def test_marker_needs_a_corrected_p_below_the_level():
    """A clear mean difference without a significant corrected p-value gets no marker; NaN p neither."""
    row = pd.Series({"RR@10 p-value corrected": 0.2, "RR@10 mean difference": 0.3, "RR@10 +": 9, "RR@10 -": 1})
    assert significant(row, "RR@10") == ""
    row["RR@10 p-value corrected"] = float("nan")
    assert significant(row, "RR@10") == ""
    row["RR@10 p-value corrected"] = 0.01
    assert significant(row, "RR@10") == "+"
    row["RR@10 mean difference"] = -0.3
    assert significant(row, "RR@10") == "-"


@pytest.mark.parametrize("engine", ["torch", "openvino"])
def test_initial_and_teacher_encoders_are_evaluated_in_the_inference_precision(
    tiny_beir, tiny_model_dir, tmp_path, engine
):
    """With bf16, the initial encoder and a bi-encoder teacher are indexed with bf16 weights in PyTorch, as trained
    encoders are (BiEncoder.for_inference), and with fp32 weights that OpenVINO compiles to bf16 itself; the
    caller's initial encoder keeps its fp32 weights for other uses."""
    from types import SimpleNamespace

    import torch

    from benchmark.data.collections import evaluation_collection
    from benchmark.encoder import BiEncoder, EncoderConfig
    from benchmark.evaluation.evaluate_run import evaluate_collection
    from benchmark.evaluation.systems import EvaluationEnvironment
    from benchmark.measurement.phases import Meter
    from regimes.teachers import BiEncoderTeacher

    config = EncoderConfig(
        model=str(tiny_model_dir),
        precision="bf16",
        device="cpu",
        max_doc_length=32,
        max_query_length=16,
        inference_engine=engine,
    )
    initial = BiEncoder(config)
    indexed: dict[str, torch.dtype] = {}
    original = EvaluationEnvironment.dense

    def recording(self, encoder, label=None, reusable=False):
        indexed[label] = next(encoder.model.parameters()).dtype
        return original(self, encoder, label, reusable)

    collection = evaluation_collection(str(tiny_beir))
    state = SimpleNamespace(regime_runs=[], tune_points=[], directory=tmp_path / "run")
    run_config = SimpleNamespace(
        data=SimpleNamespace(max_eval_queries=None), cache_dir=tmp_path / "cache", evaluate_all=False
    )
    meter = Meter(torch.device("cpu"), energy=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EvaluationEnvironment, "dense", recording)
        evaluate_collection(collection, initial, state, run_config, meter, tmp_path / "work")
        teacher = BiEncoderTeacher(str(tiny_model_dir))
        teacher.load(config)
        teacher.system(EvaluationEnvironment(collection, tmp_path / "cache", meter, tmp_path / "work-teacher"))
    weights = torch.bfloat16 if engine == "torch" else torch.float32
    assert indexed == {"initial": weights, f"teacher bi-encoder:{tiny_model_dir}": weights}
    assert next(initial.model.parameters()).dtype == torch.float32
