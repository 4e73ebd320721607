"""benchmarks/flops.py's FLOP arithmetic against PyTorch's own FLOP counter on a tiny BERT, and
benchmarks/compute_floor.py on a run folder of a tiny BEIR folder: its per-phase FLOPs and its last line."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertModel

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the scripts import their shared module by its file name

import compute_floor  # noqa: E402
from compute_floor import sorted_batches  # noqa: E402
from flops import BACKWARD_FACTOR, EncoderShape  # noqa: E402

from benchmark.data.collections import evaluation_collection  # noqa: E402
from benchmark.encoder import EncoderConfig  # noqa: E402
from benchmark.run.config import DataConfig, RunConfig  # noqa: E402


def tiny_bert(pooler: bool = True) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=80,
        max_position_embeddings=64,
        attn_implementation="eager",  # plain matrix products, which the counter sees
    )
    return BertModel(config, add_pooling_layer=pooler)


def counted(model: BertModel, length: int, backward: bool = False) -> tuple[int, int]:
    """(forward, backward) FLOPs of one unpadded sequence as torch.utils.flop_counter counts them."""
    ids = torch.randint(0, 100, (1, length))
    with FlopCounterMode(display=False) as forward_counter:
        output = model(input_ids=ids)
    forward = forward_counter.get_total_flops()
    if not backward:
        return forward, 0
    loss = output.last_hidden_state.sum() + (0 if output.pooler_output is None else output.pooler_output.sum())
    with FlopCounterMode(display=False) as backward_counter:
        loss.backward()
    return forward, backward_counter.get_total_flops()


@pytest.mark.parametrize("pooler", [True, False])
@pytest.mark.parametrize("length", [1, 7, 33])
def test_forward_flops_equal_pytorchs_count(length, pooler):
    model = tiny_bert(pooler)
    forward, _ = counted(model, length)
    assert EncoderShape.of(model).forward_flops(length) == forward


def test_backward_costs_twice_the_forward():
    model = tiny_bert()
    forward, backward = counted(model, 20, backward=True)
    assert backward == BACKWARD_FACTOR * forward


def test_padded_flops_count_every_sequence_at_its_batchs_longest():
    shape = EncoderShape.of(tiny_bert())
    assert shape.padded_flops([[5, 3], [2]]) == 2 * shape.forward_flops(5) + shape.forward_flops(2)
    assert shape.sequences_flops([5, 3, 2]) < shape.padded_flops([[5, 3], [2]])
    assert sorted_batches([1, 9, 4, 7], 2) == [[9, 7], [4, 1]]
    assert sorted_batches([1, 9, 4, 7], 2, chunk=2) == [[9, 1], [7, 4]]


def test_a_folder_without_results_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["compute_floor.py", "--run", str(tmp_path)])
    with pytest.raises(SystemExit) as stopped:
        compute_floor.main()
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"compute_floor: {tmp_path} holds no results.csv; pass a finished run's folder, results/<run-id>"
    ]


def write_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)


def test_last_line_and_flops_of_a_tiny_run_folder(tiny_beir, tiny_model_dir, tmp_path, monkeypatch, capsys):
    encoder = EncoderConfig(model=str(tiny_model_dir), precision="fp32", device="cpu", max_doc_length=32)
    config = RunConfig(
        regimes=("self-distillation",), data=DataConfig(dataset=str(tiny_beir)), encoder=encoder, cache_dir=tmp_path
    )
    run = tmp_path / "run"
    run.mkdir()
    manifest = {"config": config.as_dict(), "precision": "fp32", "wall_s": 50.0}
    (run / "manifest.json").write_text(json.dumps(manifest, default=str))
    corpus = evaluation_collection(str(tiny_beir))
    phase = {"charged_to": "", "reused": "False", "aggregates": ""}
    write_rows(
        run / "phases.csv",
        [
            {**phase, "phase": "prepare-data", "cell": "", "wall_s": 1.0, "count": 0},
            {**phase, "phase": "index", "cell": "initial", "wall_s": 4.0, "count": corpus.document_count},
            {**phase, "phase": "index", "cell": "self-distillation", "wall_s": 3.0, "count": corpus.document_count},
            {**phase, "phase": "index", "cell": "initial", "wall_s": 9.0, "count": 12, "reused": "True"},
        ],
    )
    write_rows(run / "results.csv", [{"eval_set": corpus.name, "system": "bm25", "status": "ok"}])
    monkeypatch.setattr(compute_floor, "matmul_peak", lambda dtype: 1e6)  # a known peak: a known floor

    found = compute_floor.RunWork(run)
    from benchmark.common import progress

    assert not progress.console.quiet and not progress.status_console.quiet  # rebuilding silences nothing for good
    works, walls, replayed = compute_floor.account(found)
    lengths = [
        len(ids)
        for ids in found.tokenizer([t for _, t in corpus.iter_documents()], truncation=True, max_length=32)["input_ids"]
    ]
    assert works["index"].flops == 2 * EncoderShape.of(found.encoder.model).sequences_flops(lengths)
    assert walls == {"prepare-data": 1.0, "index": 7.0} and replayed == 9.0  # a replayed phase is left out
    assert not works["prepare-data"].modelled

    last = compute_floor.render(found, compute_floor.Console(width=200))
    floor = works["index"].flops / 1e6
    assert last == f"main command: wall 50.0 s, floor {floor:.1f} s, ratio {50.0 / floor:.2f}"
    assert re.fullmatch(r"main command: wall \d+\.\d s, floor \d+\.\d s, ratio \d+\.\d\d", last)


def test_the_script_leaves_the_toolkits_output_on(tiny_beir, tmp_path, monkeypatch, capsys):
    """compute_floor quiets the toolkit's status lines only while it rebuilds a run: a test (or any caller)
    printing after it still prints."""
    from benchmark.common import progress

    monkeypatch.setattr(compute_floor, "RunWork", lambda directory: progress.say("rebuilding") or directory)
    monkeypatch.setattr(compute_floor, "render", lambda work, console: "main command: wall 1.0 s")
    (tmp_path / "results.csv").write_text("eval_set,system\n")
    monkeypatch.setattr(sys, "argv", ["compute_floor.py", "--run", str(tmp_path)])
    compute_floor.main()
    progress.say("after")
    printed = capsys.readouterr()
    assert "rebuilding" not in printed.err and "after" in printed.err
    assert printed.out.strip().splitlines()[-1] == "main command: wall 1.0 s"
