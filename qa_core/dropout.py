"""Dropout for CPU training with masks cut from 64-bit random words: the same dropout, cheaper random numbers."""

from __future__ import annotations

import torch
from torch import nn

INT16_VALUES = 1 << 16  # each 64-bit word gives four int16 draws
INT16_MIN = -(1 << 15)


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A bool mask, True with probability 1 - p (p rounded to a multiple of 1/65536), from torch's generator.

    PyTorch's CPU bernoulli_ draws one random number per element; four int16 lanes of one 64-bit draw cost a
    quarter of the generator's work, and the generator was most of dropout's time in a training step.
    """
    count = shape.numel()
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(1 << 63), (1 << 63) - 1)  # all 64 bits: random_() alone leaves the top bit 0
    threshold = INT16_MIN + round(p * INT16_VALUES)
    return (words.view(torch.int16)[:count] >= threshold).view(shape)


class MaskedDropout(nn.Dropout):
    """nn.Dropout whose training-time mask comes from keep_mask; eval mode, p, repr and state are nn.Dropout's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return x * 0.0
        return x * keep_mask(x.shape, self.p, x.device) * (1 / (1 - self.p))  # scaled in float, as nn.Dropout


def use_masked_dropout(model: nn.Module) -> int:
    """Swap every nn.Dropout of the model for a MaskedDropout with the same p, in place; returns how many.

    For CPUs only: CUDA's fused dropout draws its masks in the kernel already. Dropout holds no weights, so
    saved models are unchanged; masks still come from torch's seeded generator, so runs and resumes repeat.
    """
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                masked = MaskedDropout(child.p, child.inplace)
                setattr(parent, name, masked.train(child.training))  # a new module starts in training mode
                swapped += 1
    return swapped
