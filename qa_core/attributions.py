"""Why this answer: per-token attributions of the start and end logits (captum), within a time budget."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import InputXGradient, IntegratedGradients
from transformers import PreTrainedTokenizerBase

from qa_core.batching import collate
from qa_core.config import QAConfig
from qa_core.features import Feature
from qa_core.inference import question_windows, run_model, token_labels
from qa_core.modeling import LoadedModel
from qa_core.postprocess import SpanSearch, predict_example

INTEGRATED_GRADIENTS = "integrated gradients"
GRADIENT_X_INPUT = "gradient x input"
DEFAULT_BUDGET_S = 5.0  # seconds one explanation may take (the app allows less on a public server)
MIN_STEPS = 8  # fewer integration steps than this approximate the path integral too coarsely: use gradient x input
MAX_STEPS = 50
MANY_WINDOWS = 8  # contexts with more windows already spent the budget on answering: use gradient x input


@dataclass(frozen=True)
class Attribution:
    """Attributions over the tokens of the window that holds the answer (question, context and special tokens)."""

    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int] | None, ...]  # characters in the context; None for question/special tokens
    start_attributions: np.ndarray  # (tokens,) summed over the embedding dimension
    end_attributions: np.ndarray  # (tokens,)
    start_token: int  # the answer's first and last token in this window
    end_token: int
    window: int  # which window of the context (0-based)
    windows: int
    method: str  # INTEGRATED_GRADIENTS or GRADIENT_X_INPUT
    steps: int  # integration steps (0 for gradient x input)
    seconds: float  # wall time of the whole explanation, answering included
    labels: tuple[str, ...] = ()  # what the plots show: each token's text (inference.token_labels)


def explain_answer(loaded: LoadedModel, question: str, context: str, span: tuple[int, int] | None = None,
                   config: QAConfig = QAConfig(), budget_s: float = DEFAULT_BUDGET_S,
                   method: str | None = None, max_windows: int | None = None) -> Attribution:
    """Attribute the start logit at the answer's first token and the end logit at its last token.

    span: the answer's character span (an Errors row); None answers the question first (Ask). method: None picks
    integrated gradients when the budget allows MIN_STEPS steps and the context has at most MANY_WINDOWS windows;
    integrated gradients asked for by name still take the steps the budget allows, but at least MIN_STEPS.
    A context of more than max_windows windows is refused before the model runs, as when answering.
    Needs the fp32 model (gradients do not pass through int8 layers).
    """
    if method not in (None, INTEGRATED_GRADIENTS, GRADIENT_X_INPUT):
        raise ValueError(f"method {method!r} is not one of {INTEGRATED_GRADIENTS!r}, {GRADIENT_X_INPUT!r}")
    if budget_s <= 0:
        raise ValueError(f"budget_s must be > 0, got {budget_s}")
    began = time.perf_counter()
    features, window, start_token, end_token = locate_answer(loaded, question, context, span, config, max_windows)
    inputs = collate([features[window]], loaded.batch_format)  # one window: nothing padded
    targets = (("start", start_token), ("end", end_token))
    probe = time.perf_counter()
    attributions = [gradient_x_input(loaded.model, inputs, which, token) for which, token in targets]
    steps = affordable_steps(budget_s - (time.perf_counter() - began), (time.perf_counter() - probe) / 2)
    chosen = method or (INTEGRATED_GRADIENTS if steps >= MIN_STEPS and len(features) <= MANY_WINDOWS
                        else GRADIENT_X_INPUT)
    if chosen == INTEGRATED_GRADIENTS:
        steps = max(steps, MIN_STEPS)
        baseline = baseline_ids(features[window], loaded.tokenizer)
        attributions = [integrated_gradients(loaded.model, inputs, baseline, which, token, steps)
                        for which, token in targets]
    feature = features[window]
    return Attribution(tuple(loaded.tokenizer.convert_ids_to_tokens(list(feature.input_ids))), tuple(feature.offsets),
                       attributions[0], attributions[1], start_token, end_token, window, len(features), chosen,
                       steps if chosen == INTEGRATED_GRADIENTS else 0, time.perf_counter() - began,
                       token_labels(loaded.tokenizer, feature, context, question))


def locate_answer(loaded: LoadedModel, question: str, context: str, span: tuple[int, int] | None,
                  config: QAConfig, max_windows: int | None = None) -> tuple[tuple[Feature, ...], int, int, int]:
    """The context's windows, and (window, start token, end token) of the given span or else the predicted one."""
    example, config, features = question_windows(loaded, question, context, config, max_windows)
    # a given span needs only the windows holding it scored: a long context's others would spend the budget
    held = range(len(features)) if span is None else [i for i, f in enumerate(features) if span_tokens(f, span)]
    windows = [features[i] for i in held]
    start_logits, end_logits = run_model(loaded.model, windows, config.per_device_eval_batch_size,
                                         batch_format=loaded.batch_format)
    if span is None:
        # the best span, even where a SQuAD 2.0 run would abstain: that is the answer there is to explain
        search = SpanSearch(config.n_best_size, config.max_answer_length, config.whole_word_spans)
        span = predict_example(example, list(zip(windows, start_logits, end_logits)), search).span
        if span is None:
            raise ValueError("the model found no answer span to explain")
    window, start, end = answer_window(windows, start_logits, end_logits, span)
    return features, held[window], start, end


def span_tokens(feature: Feature, span: tuple[int, int]) -> tuple[int, int] | None:
    """The first and last of the window's tokens over the character span; None where it does not hold all of it."""
    tokens = [(i, o) for i, o in enumerate(feature.offsets) if o is not None and o[0] < span[1] and o[1] > span[0]]
    if not tokens or tokens[0][1][0] > span[0] or tokens[-1][1][1] < span[1]:
        return None
    return tokens[0][0], tokens[-1][0]


def answer_window(features: Sequence[Feature], start_logits: np.ndarray, end_logits: np.ndarray,
                  span: tuple[int, int]) -> tuple[int, int, int]:
    """(window, start token, end token): of the windows holding the whole span, the one scoring it highest."""
    best: tuple[float, int, int, int] | None = None
    for index, feature in enumerate(features):
        if (tokens := span_tokens(feature, span)) is None:
            continue
        score = float(start_logits[index, tokens[0]] + end_logits[index, tokens[1]])
        if best is None or score > best[0]:
            best = (score, index, *tokens)
    if best is None:
        raise ValueError(f"no window holds the whole answer span {span}")
    return best[1], best[2], best[3]


def affordable_steps(remaining_s: float, pass_s: float) -> int:
    """Integration steps for the start and end logits that fit the remaining time, at most MAX_STEPS.

    Each step is priced as one forward and backward pass at batch size 1; batched steps cost less, so this errs
    on the side of finishing early.
    """
    if remaining_s <= 0:
        return 0
    return int(min(MAX_STEPS, remaining_s / (2 * max(pass_s, 1e-6))))


def baseline_ids(feature: Feature, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """(1, seq) the window's ids with every question and context token replaced by PAD ([MASK] without one);
    CLS and SEP (BOS and EOS) kept, so the path runs from 'no words' to the input."""
    kept = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id} - {None}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.mask_token_id
    return torch.tensor([[i if i in kept else pad for i in feature.input_ids]])


def logit_at(model: torch.nn.Module, which: str, position: int, names: tuple[str, ...],
             inputs_embeds: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
    """(batch,) the start or end logit at one position, from the word embeddings: the scalar that captum
    attributes. extra holds the batch's other inputs (attention mask, and segment ids where the model takes them),
    named by names."""
    outputs = model(inputs_embeds=inputs_embeds, **dict(zip(names, extra)))
    logits = outputs.start_logits if which == "start" else outputs.end_logits  # (batch, seq)
    return logits[:, position]


def word_embeddings(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """(batch, seq, hidden) the ids' word embeddings, which the attributions are taken on.

    Fed to the model as inputs_embeds rather than caught by a hook on its embedding layer (captum's Layer*
    explainers): the app explains on one thread while another answers with the same model, and a hook would
    reach into those answers too."""
    with torch.no_grad():
        return model.get_input_embeddings()(_on(model, input_ids))


def gradient_x_input(model: torch.nn.Module, inputs: dict[str, torch.Tensor], which: str, position: int) -> np.ndarray:
    """(seq,) gradient of the logit with respect to each word embedding, times that embedding, summed."""
    names, extra = _extra(model, inputs)
    explainer = InputXGradient(functools.partial(logit_at, model, which, position, names))
    with _eval_mode(model):
        values = explainer.attribute(word_embeddings(model, inputs["input_ids"]),
                                     additional_forward_args=extra)  # (1, seq, hidden)
    return values.sum(dim=-1)[0].detach().cpu().numpy()


def integrated_gradients(model: torch.nn.Module, inputs: dict[str, torch.Tensor], baseline: torch.Tensor, which: str,
                         position: int, steps: int) -> np.ndarray:
    """(seq,) integrated gradients on the word embeddings from the baseline's to the input's, summed per token."""
    names, extra = _extra(model, inputs)
    explainer = IntegratedGradients(functools.partial(logit_at, model, which, position, names))
    with _eval_mode(model):
        values = explainer.attribute(word_embeddings(model, inputs["input_ids"]),
                                     baselines=word_embeddings(model, baseline), additional_forward_args=extra,
                                     n_steps=steps, internal_batch_size=steps)  # (1, seq, hidden)
    return values.sum(dim=-1)[0].detach().cpu().numpy()


def _on(model: torch.nn.Module, tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(next(model.parameters()).device)


def _extra(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[tuple[str, ...], tuple[torch.Tensor, ...]]:
    """Names and tensors of the model inputs besides input_ids and the labels."""
    names = tuple(k for k in inputs if k != "input_ids" and not k.endswith("_positions"))
    return names, tuple(_on(model, inputs[k]) for k in names)


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Dropout off while attributing; the model's mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
