"""Faster CPU kernels for training the same function: the same dropout probabilities, the same attention.

Measured on a 2-core AVX-512 BF16 CPU (benchmarks/hardware_use.py, issue 16): a training step spends about an
eighth of its time drawing dropout masks (``bernoulli_`` makes one generator call per element) and a third in
PyTorch's fused attention, whose bf16 backward is slower than its fp32 one for 32-dimensional heads. Both kernels
here keep what is computed: dropout still zeroes each element with probability p (to 1/32768) and rescales the
rest by 1/(1-p); attention is the same scaled dot product, evaluated in fp32 while training. Inference is
untouched (bf16 attention is the faster one there).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

FP32_TRAINING_ATTENTION = "sdpa_fp32_training"
MASK_LEVELS = 1 << 15  # a mask element is 15 random bits: p is rounded to a multiple of 1/32768


def sdpa_fp32_while_training(module: nn.Module, query, key, value, attention_mask, **kwargs):
    """transformers' SDPA attention, with query, key and value in fp32 while the module trains."""
    if not module.training or query.dtype == torch.float32:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    dtype = query.dtype
    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    with torch.autocast(query.device.type, enabled=False):
        output, weights = sdpa_attention_forward(
            module, query.float(), key.float(), value.float(), attention_mask, **kwargs
        )
    return output.to(dtype), weights


AttentionInterface.register(FP32_TRAINING_ATTENTION, sdpa_fp32_while_training)
AttentionMaskInterface.register(FP32_TRAINING_ATTENTION, sdpa_mask)  # without it, padding would not be masked


class FastDropout(nn.Dropout):
    """``nn.Dropout`` whose mask takes four elements from each 64-bit draw instead of one draw per element."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return torch.zeros_like(x)
        count = x.numel()
        words = torch.empty((count + 3) // 4, dtype=torch.int64, device=x.device).random_()
        bits = words.view(torch.int16)[:count].view(x.shape) & (MASK_LEVELS - 1)  # 15 uniform bits each
        dropped = round(self.p * MASK_LEVELS)
        return x * (bits >= dropped) * (MASK_LEVELS / (MASK_LEVELS - dropped))


def use_fast_cpu_training(model: nn.Module) -> None:
    """Swap the model's dropout modules for FastDropout and, where it uses transformers' SDPA attention, that
    attention for the fp32-while-training one."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Dropout:
                setattr(module, name, FastDropout(child.p, child.inplace).train(child.training))
    if getattr(model.config, "_attn_implementation", None) == "sdpa":
        model.set_attn_implementation(FP32_TRAINING_ATTENTION)


def restore_attention(model: nn.Module) -> None:
    """Back to plain SDPA (before saving, so the saved config names an implementation every loader knows)."""
    if getattr(model.config, "_attn_implementation", None) == FP32_TRAINING_ATTENTION:
        model.set_attn_implementation("sdpa")
