"""The CPU training kernels compute the same function: dropout at its probability and scale, fp32 attention equal
to PyTorch's SDPA, padding masked, eval mode kept, and a saved model that names plain SDPA."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from benchmark.cpu_training import FP32_TRAINING_ATTENTION, MASK_LEVELS, FastDropout
from tests.benchmark.conftest import make_encoder

TEXTS = ["a", "vitamin d deficiency and bone fractures in older adults over many years", "statins and the heart"]


@pytest.mark.parametrize("p", [0.1, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fast_dropout_drops_at_its_probability_and_rescales_the_rest(p, dtype):
    """Over 10^6 elements the dropped share is p within 5 binomial standard deviations; kept ones are x/(1-p)."""
    torch.manual_seed(0)
    x = torch.rand(1_000_003, dtype=dtype) + 0.5
    y = FastDropout(p).train()(x)
    dropped = (y == 0).double().mean().item()
    assert abs(dropped - p) < 5 * (p * (1 - p) / x.numel()) ** 0.5
    kept = y != 0
    scale = MASK_LEVELS / (MASK_LEVELS - round(p * MASK_LEVELS))
    torch.testing.assert_close(y[kept].float(), (x[kept].float() * scale).to(dtype).float())


def test_fast_dropout_is_the_identity_in_eval_mode_and_seeded_in_training():
    x = torch.randn(4, 7)
    dropout = FastDropout(0.3)
    assert torch.equal(dropout.eval()(x), x)
    dropout.train()
    torch.manual_seed(5)
    a = dropout(x)
    torch.manual_seed(5)
    assert torch.equal(dropout(x), a)
    assert not torch.equal(dropout(x), a)


def test_fast_dropout_gradient_is_the_mask_times_the_scale():
    x = torch.ones(1000, requires_grad=True)
    y = FastDropout(0.2).train()(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())


def test_the_swap_keeps_every_module_in_its_mode(tiny_model_dir):
    """An encoder loaded in eval mode has no active dropout: two forward passes agree (the swapped modules must
    not come up in training mode)."""
    encoder = make_encoder(tiny_model_dir)
    dropouts = [m for m in encoder.model.modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(type(m) is FastDropout for m in dropouts)
    assert not any(m.training for m in dropouts)
    torch.testing.assert_close(encoder.embed(TEXTS, "doc"), encoder.embed(TEXTS, "doc"), rtol=0, atol=0)
    encoder.train()
    assert all(m.training for m in dropouts)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fp32_training_attention_matches_sdpa_and_masks_padding(tiny_model_dir, precision):
    """In training (no dropout), the fp32 attention gives SDPA's embeddings; a text alone and in a padded batch
    embed the same, so padding is masked."""
    encoder = make_encoder(tiny_model_dir, precision=precision, dropout=0.0)
    assert encoder.model.config._attn_implementation == FP32_TRAINING_ATTENTION
    encoder.train()
    ours = encoder.embed(TEXTS, "doc")
    alone = encoder.embed(TEXTS[:1], "doc")
    encoder.model.set_attn_implementation("sdpa")
    reference = encoder.embed(TEXTS, "doc")
    tolerance = 1e-5 if precision == "fp32" else 2e-2
    torch.testing.assert_close(ours, reference, rtol=0, atol=tolerance)
    torch.testing.assert_close(alone[0], ours[0], rtol=0, atol=tolerance)


def test_a_saved_model_names_plain_sdpa_and_keeps_training_fast(tiny_model_dir, tmp_path):
    encoder = make_encoder(tiny_model_dir)
    encoder.save(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved.get("_attn_implementation") in (None, "sdpa")
    assert encoder.model.config._attn_implementation == FP32_TRAINING_ATTENTION
