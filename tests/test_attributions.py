"""Attributions with the tiny BERT: tokens and spans, completeness of integrated gradients, the method choice."""

from __future__ import annotations

import re
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from qa_core import attributions, plots
from qa_core.batching import collate
from qa_core.config import QAConfig
from qa_core.data import Example
from qa_core.features import featurize
from qa_core.modeling import load_model
from tests.families import FAMILIES, build_family, sample_texts

QUESTION = "Who designed the lens?"
CONTEXT = "The Fresnel lens was designed by Augustin-Jean Fresnel in 1822 for lighthouses on the coast of France."


def test_tokens_spans_and_answer_tokens_of_the_window(tiny_loaded):
    result = attributions.explain_answer(tiny_loaded, QUESTION, CONTEXT)
    assert result.method == attributions.INTEGRATED_GRADIENTS
    assert attributions.MIN_STEPS <= result.steps <= attributions.MAX_STEPS
    assert len(result.tokens) == len(result.offsets) == len(result.start_attributions) == len(result.end_attributions)
    assert result.tokens[0] == "[CLS]" and result.offsets[1] is None  # question tokens have no context span
    for token, span in zip(result.tokens, result.offsets):
        if span is not None:
            assert CONTEXT[span[0]:span[1]].lower() == token.removeprefix("##")
    assert result.offsets[result.start_token] is not None and result.start_token <= result.end_token
    assert (result.window, result.windows) == (0, 1) and result.seconds > 0


def test_integrated_gradients_add_up_to_the_logit_change(tiny_loaded):
    """Completeness: the attributions sum to logit(input) - logit(baseline), up to the integration error."""
    tokenizer, model = tiny_loaded.tokenizer, tiny_loaded.model
    feature = featurize([Example("q", QUESTION, CONTEXT, ())], tokenizer, QAConfig(), training=False).features[0]
    inputs = collate([feature], tiny_loaded.batch_format)
    baseline = attributions.baseline_ids(feature, tokenizer)
    assert baseline[0, 0] == tokenizer.cls_token_id and baseline[0, -1] == tokenizer.sep_token_id
    assert (baseline[0, 1:-1] != tokenizer.sep_token_id).sum() == len(feature.input_ids) - 3
    values = attributions.integrated_gradients(model, inputs, baseline, "end", 20, steps=50)
    model.eval()  # the logits compared must be free of dropout, as the attributions are
    names, extra = ("token_type_ids", "attention_mask"), (inputs["token_type_ids"], inputs["attention_mask"])
    with torch.no_grad():
        embedded, nothing = (attributions.word_embeddings(model, ids) for ids in (inputs["input_ids"], baseline))
        change = (attributions.logit_at(model, "end", 20, names, embedded, *extra)
                  - attributions.logit_at(model, "end", 20, names, nothing, *extra)).item()
    assert values.sum() == pytest.approx(change, rel=0.02, abs=1e-5)


def test_a_small_budget_or_many_windows_fall_back_to_gradient_x_input(tiny_loaded):
    quick = attributions.explain_answer(tiny_loaded, QUESTION, CONTEXT, budget_s=1e-4)
    assert (quick.method, quick.steps) == (attributions.GRADIENT_X_INPUT, 0)
    assert np.abs(quick.start_attributions).sum() > 0
    long_context = " ".join([CONTEXT] * 40)
    config = QAConfig(max_seq_length=64, doc_stride=16, max_query_length=16)
    wide = attributions.explain_answer(tiny_loaded, QUESTION, long_context, config=config)
    assert wide.windows > attributions.MANY_WINDOWS and wide.method == attributions.GRADIENT_X_INPUT
    answer = wide.offsets[wide.start_token][0], wide.offsets[wide.end_token][1]
    assert answer[0] <= answer[1] and len(wide.tokens) <= 64


def test_a_given_span_is_explained_and_the_model_mode_is_kept(tiny_loaded):
    start = CONTEXT.index("Augustin")
    span = (start, start + len("Augustin-Jean Fresnel"))
    tiny_loaded.model.train()
    result = attributions.explain_answer(tiny_loaded, QUESTION, CONTEXT, span=span,
                                         method=attributions.GRADIENT_X_INPUT)
    assert tiny_loaded.model.training
    assert result.offsets[result.start_token][0] == span[0] and result.offsets[result.end_token][1] == span[1]
    figure = plots.attribution_figure(result)
    assert list(figure.data[0].y) == ["start", "end"] and np.abs(figure.data[0].z).max() == pytest.approx(1.0)
    assert "gradient x input" in figure.layout.title.text
    # a phone shows about 40 characters of a title: 'Attributions (integrated gradients, 32 steps, 1.80 s)' was cut
    integrated = plots.attribution_figure(replace(result, method=attributions.INTEGRATED_GRADIENTS, steps=32))
    assert all(len(re.sub("<[^>]+>", "", line)) <= 40 for line in integrated.layout.title.text.split("<br>"))


def test_a_given_span_in_a_long_context_scores_only_the_windows_holding_it(tiny_loaded, monkeypatch):
    """Found by a tester: "Why this answer?" over a 31-window context took longer than the server's budget, most of
    it answering every window again; the Ask tab knows the span it showed, and only windows holding it can score it."""
    long_context = " ".join(f"Sentence {n} says nothing of lenses." for n in range(60)) + " " + CONTEXT
    start = long_context.index("Augustin")
    span = (start, start + len("Augustin-Jean Fresnel"))
    config = QAConfig(max_seq_length=64, doc_stride=16, max_query_length=16)
    scored: list[int] = []

    def counted(model, features, *args, **kwargs):  # the real forward pass, its windows counted
        scored.append(len(features))
        return run_model(model, features, *args, **kwargs)

    run_model = attributions.run_model
    monkeypatch.setattr(attributions, "run_model", counted)
    result = attributions.explain_answer(tiny_loaded, QUESTION, long_context, span=span, config=config)
    assert result.windows > 10 and scored[0] <= 3
    assert result.offsets[result.start_token][0] == span[0] and result.offsets[result.end_token][1] == span[1]


def test_bad_requests_name_the_problem(tiny_loaded):
    with pytest.raises(ValueError, match="method"):
        attributions.explain_answer(tiny_loaded, QUESTION, CONTEXT, method="saliency")
    with pytest.raises(ValueError, match="budget_s"):
        attributions.explain_answer(tiny_loaded, QUESTION, CONTEXT, budget_s=0)
    with pytest.raises(ValueError, match="no window holds"):
        attributions.explain_answer(tiny_loaded, QUESTION, CONTEXT, span=(len(CONTEXT) + 5, len(CONTEXT) + 9))
    with pytest.raises(ValueError, match=r"^context is not valid Unicode \(an unpaired surrogate at character 2\)$"):
        attributions.explain_answer(tiny_loaded, QUESTION, "a \ud800 b")  # not the tokenizer's TypeError


@pytest.mark.parametrize("family", ["distilbert", "roberta"])
def test_models_without_segment_ids_and_with_other_special_tokens(family, tmp_path):
    """DistilBERT takes no token_type_ids; RoBERTa's windows start with <s> and pad with id 1."""
    folder = build_family(next(f for f in FAMILIES if f.name == family), tmp_path / family, sample_texts())
    loaded = load_model(str(folder))
    context = "The Eiffel Tower is named after the engineer Gustave Eiffel, whose company built it."
    result = attributions.explain_answer(loaded, "Who is the tower named after?", context,
                                         method=attributions.INTEGRATED_GRADIENTS)
    assert result.steps >= attributions.MIN_STEPS and np.isfinite(result.start_attributions).all()
    assert result.tokens[0] == loaded.tokenizer.convert_ids_to_tokens(loaded.tokenizer.cls_token_id)
    assert result.offsets[result.start_token] is not None and result.offsets[result.end_token] is not None


def axis_labels(figure) -> list[str]:
    """The token axis as it reads: categories without the zero-width marks that keep repeated tokens apart."""
    return [label.strip("".join(plots.INVISIBLE)) for label in figure.data[0].x]


def test_the_hover_shows_how_the_model_cut_a_word(tiny_loaded):
    """The axis reads as the text; the hover keeps the vocabulary piece where it differs, for those learning how
    a tokenizer cuts words."""
    from qa_core.inference import answer_question

    logits = answer_question(tiny_loaded, "Who?", "Fresnel designed lighthouses.").logits
    hovers = list(plots.logit_figure(logits).data[0].customdata)
    pieces = [token for token in logits.tokens if token.startswith("##")]
    assert pieces and all(any(hover.endswith(f"({piece})") for hover in hovers) for piece in pieces)
    assert "designed" in hovers or any(h.startswith("design") for h in hovers)


@pytest.mark.parametrize("family", ["bert", "roberta", "albert", "deberta-v2"])
def test_plots_label_tokens_by_their_text_not_by_vocabulary_strings(family, tmp_path):
    """Found by a tester: RoBERTa's plots read 'ĠThe', 'Ã©' (é as two byte tokens), 'âĢĶ' (—), DeBERTa's and
    ALBERT's '▁The'. A context token reads as the characters it covers, a question token as the question's, a
    special token as itself."""
    from qa_core.inference import answer_question

    loaded = load_model(str(build_family(next(f for f in FAMILIES if f.name == family), tmp_path, sample_texts())))
    question, context = "Who made the Café — lens?", "The Café — 東京 lens was designed by Fresnel."
    logits = answer_question(loaded, question, context).logits
    shown = axis_labels(plots.logit_figure(logits))
    assert shown == [context[a:b] for a, b in logits.offsets] and "—" in shown and "Fresnel" in "".join(shown)
    result = attributions.explain_answer(loaded, question, context, method=attributions.GRADIENT_X_INPUT)
    shown = axis_labels(plots.attribution_figure(result))
    assert shown[0] == plots.plot_text(loaded.tokenizer.cls_token or loaded.tokenizer.bos_token)  # [CLS] or <s>
    in_context = [context[span[0]:span[1]] for span in result.offsets if span is not None]
    assert [label for label, span in zip(shown, result.offsets) if span is not None] == in_context
    marks = set(loaded.tokenizer.all_special_tokens) - {loaded.tokenizer.unk_token}  # [CLS], [SEP], <s>, </s>...
    asked = [label for label, span, token in zip(shown, result.offsets, result.tokens) if span is None and
             token not in marks]
    assert all(label in question or label == "␣" for label in asked) and "—" in asked, asked  # a space: ␣
    assert not any(mark in label for label in shown for mark in ("Ġ", "▁", "Ã", "##", "�"))


def test_explaining_leaves_answers_from_the_same_model_alone(tiny_loaded):
    """The app explains on its own thread while the model thread answers with the same model: an explanation must
    not change the model that answers (captum's layer hooks on its embeddings did: answers failed or were wrong,
    and explanations failed)."""
    from qa_core.inference import answer_question

    tiny_loaded.model.eval()  # as every served model is (load_model's); a model in training mode is switched per call
    expected = answer_question(tiny_loaded, "Who?", "Fresnel did it.").prediction
    answers, stop = [], threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                answers.append(answer_question(tiny_loaded, "Who?", "Fresnel did it.").prediction)
            except Exception as err:  # a broken answer is what this test is about
                answers.append(err)

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        explained = [attributions.explain_answer(tiny_loaded, QUESTION, CONTEXT) for _ in range(8)]
    finally:
        stop.set()
        asker.join()
    assert answers and not [a for a in answers if isinstance(a, Exception)]
    assert {(a.text, a.span) for a in answers} == {(expected.text, expected.span)}
    assert [a.score for a in answers] == pytest.approx([expected.score] * len(answers), rel=1e-4)
    assert all(len(e.start_attributions) == len(e.tokens) for e in explained)
