"""OpenVINO inference embeddings: the PyTorch encoder's, recompiled when the weights change, chosen by
--inference-engine with bad choices refused, and imported without OpenVINO's usage telemetry."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch

from benchmark.common.errors import UsageError
from benchmark.encoder import resolve_engine
from tests.benchmark.conftest import make_encoder

TEXTS = [
    "a",
    "vitamin d deficiency and bone fractures in older adults over many years of follow up",
    "smoking causes lung cancer",
    "the quick brown fox jumps over the lazy dog while the cat sleeps on the warm windowsill",
]


@pytest.mark.parametrize(("precision", "atol"), [("fp32", 1e-5), ("bf16", 2e-2)])
def test_openvino_embeddings_match_pytorch_fp32(tiny_model_dir, precision, atol):
    """Against PyTorch in fp32, in input order, with padding masked (texts of very different lengths)."""
    reference = make_encoder(tiny_model_dir, inference_engine="torch").encode(TEXTS, "query")
    engine = make_encoder(tiny_model_dir, precision=precision, inference_engine="openvino")
    assert engine.engine == "openvino"
    np.testing.assert_allclose(engine.encode(TEXTS, "query", batch_size=3), reference, atol=atol, rtol=0)
    np.testing.assert_allclose(engine.encode(TEXTS[1:2], "query"), reference[1:2], atol=atol, rtol=0)


def test_a_weight_change_recompiles_and_a_copy_compiles_its_own(tiny_model_dir):
    encoder = make_encoder(tiny_model_dir, inference_engine="openvino")
    before = encoder.encode(TEXTS, "doc")
    twin = copy.deepcopy(encoder)
    with torch.no_grad():
        for parameter in encoder.model.parameters():
            parameter.mul_(0.5)
    after = encoder.encode(TEXTS, "doc")
    assert not np.allclose(before, after, atol=1e-3)
    reference = make_encoder(tiny_model_dir, inference_engine="torch")
    reference.load_state(encoder.state_copy())
    np.testing.assert_allclose(after, reference.encode(TEXTS, "doc"), atol=1e-5, rtol=0)
    np.testing.assert_allclose(twin.encode(TEXTS, "doc"), before, atol=1e-6, rtol=0)


def test_the_engine_is_part_of_the_identity(tiny_model_dir):
    torch_side = make_encoder(tiny_model_dir, inference_engine="torch")
    openvino_side = make_encoder(tiny_model_dir, inference_engine="openvino")
    assert torch_side.identity != openvino_side.identity


@pytest.mark.parametrize(
    ("engine", "device", "precision", "words"),
    [
        ("tensorrt", "cpu", "fp32", "--inference-engine tensorrt is unknown"),
        ("openvino", "cuda", "bf16", "use --inference-engine torch"),
        ("openvino", "cpu", "fp16", "use --inference-engine torch"),
    ],
)
def test_bad_engine_choices_are_refused(engine, device, precision, words):
    with pytest.raises(UsageError, match=words):
        resolve_engine(engine, torch.device(device), precision)


def test_auto_is_openvino_on_a_cpu_and_torch_elsewhere():
    assert resolve_engine("auto", torch.device("cpu"), "bf16") == "openvino"
    assert resolve_engine("auto", torch.device("cpu"), "fp16") == "torch"
    assert resolve_engine("auto", torch.device("cuda"), "bf16") == "torch"


def test_openvino_is_imported_without_its_usage_telemetry():
    code = (
        "import sys; from benchmark.openvino_encoder import import_openvino; ov = import_openvino(); "
        "print(ov.__name__, any(m.startswith('openvino_telemetry') for m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["openvino", "False"]


def test_token_batches_hold_at_most_the_budget_and_every_sequence_once():
    from benchmark.openvino_encoder import token_batches

    lengths = [300, 256, 200, 64, 64, 64, 30, 30, 5, 1]
    batches = token_batches(lengths, 256)
    assert [i for s in batches for i in range(len(lengths))[s]] == list(range(len(lengths)))
    assert all(len(range(len(lengths))[s]) * lengths[s.start] <= 256 or s.stop - s.start == 1 for s in batches)
    assert batches[0] == slice(0, 1) and batches[-2:] == [slice(3, 7), slice(7, 10)]  # 256 // 64 = 4, then 30s
