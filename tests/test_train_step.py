"""One training step's parts: the model wrapped for the device, forward and backward, the optimizer step."""

from __future__ import annotations

import torch
from torch import nn

from qa_core.config import QAConfig
from qa_core.distributed import DistContext
from qa_core.dropout import MaskedDropout
from qa_core.train_step import wrap_model
from tests.conftest import tiny_bert


def test_training_on_a_cpu_uses_masked_dropout(tokenizer) -> None:
    model = wrap_model(tiny_bert(len(tokenizer)), QAConfig(), DistContext(), torch.device("cpu"))
    assert any(isinstance(m, MaskedDropout) for m in model.modules())
    assert not any(type(m) is nn.Dropout for m in model.modules())
