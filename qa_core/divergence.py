"""Divergence: what shows that training has broken down, and the one line that tells the user what to do."""

from __future__ import annotations

from pathlib import Path

import torch

from qa_core.config import QAConfig
from qa_core.run_files import find_checkpoint


def nonfinite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the parameters holding NaN or infinity. The gradient norm is checked at every update (after it, so
    as not to wait for the norm before queuing it; the run stops before a checkpoint holds it), but weights can
    stop being finite with finite gradients, which shows only in them: an update that overflows, or a non-finite
    value the model came with in a row no step gathers (a damaged model file)."""
    with torch.no_grad():
        return [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]


def diverged_message(config: QAConfig, step: int, loss: float, grad_norm: float) -> tuple[str, str]:
    """(train.py's words, the web app's): what diverged, then which options to change, as each one sets them."""
    said = (f"training diverged at step {step}: loss {loss:.4g}, gradient norm {grad_norm:.4g}; "
            f"{kept_checkpoint(config)}")
    cli, web = remedies(config)
    return f"{said}. {cli}", f"{said}. {web}"


def ruined_message(config: QAConfig, step: int, names: list[str]) -> tuple[str, str]:
    """(train.py's words, the web app's), as diverged_message."""
    said = (f"training diverged: the weights are no longer finite after step {step} ({len(names)} tensors, "
            f"e.g. {names[0]}); {kept_checkpoint(config)}")
    cli, web = weights_remedies(config)
    return f"{said}. {cli}", f"{said}. {web}"


def remedies(config: QAConfig) -> tuple[str, str]:
    """The usual remedies in train.py's words and the web app's. A new run, because a resume continues with the
    run's own options, and would diverge again. bf16 off only where it was on: training's config holds bf16 as
    it ran (train_setup resolves the default), and a run in fp32 cannot turn it off."""
    rate = f"(now {config.learning_rate:g})"
    cli_bf16, web_bf16 = (", --no-bf16", ", bf16 off") if config.bf16 is True else ("", "")
    return (f"Start a new run (another --output_dir) with a lower --learning_rate {rate}{cli_bf16} or a higher "
            f"--warmup_ratio", f"Start a new run with a lower learning_rate {rate}{web_bf16} or a higher warmup_ratio")


def weights_remedies(config: QAConfig) -> tuple[str, str]:
    """As remedies, for weights gone non-finite with finite gradients: that cause is not known (a damaged model
    file can do it too), so every option that scales the weights is named, and the model first."""
    rate, decay = f"(now {config.learning_rate:g})", f"(now {config.weight_decay:g})"
    cli_decay, web_decay = ((f" or --weight_decay {decay}", f" or weight_decay {decay}") if config.weight_decay
                            else ("", ""))  # no decay: none to lower
    said = "The gradients were finite: check the model's weights"
    return (f"{said}, or start a new run (another --output_dir) with a lower --learning_rate {rate}{cli_decay}",
            f"{said}, or start a new run with a lower learning_rate {rate}{web_decay}")


def kept_checkpoint(config: QAConfig) -> str:
    checkpoint = find_checkpoint(Path(config.output_dir))
    return f"the last good checkpoint ({checkpoint}) is kept" if checkpoint else "no checkpoint was written yet"
