"""Running a model and answering: bf16 where the device does it natively, abstaining under a SQuAD 2.0 config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from qa_core.attention import CPU_BF16_ATTENTION
from qa_core.config import QAConfig
from qa_core.data import Example
from qa_core.features import Feature, featurize
from qa_core.inference import answer_question, merge_token_logits, question_windows, run_model
from qa_core.modeling import load_model
from qa_core.precision import native_bf16_cpu, resolve_bf16, set_up_precision
from tests.v2_data import CONTEXT


def test_bf16_defaults_to_what_the_device_does_natively() -> None:
    assert resolve_bf16(None, torch.device("cuda")) is True
    assert resolve_bf16(None, torch.device("cpu")) is native_bf16_cpu()
    assert resolve_bf16(False, torch.device("cuda")) is False and resolve_bf16(True, torch.device("cpu")) is True


def test_answer_question_abstains_with_a_v2_config(tiny_loaded) -> None:
    always = QAConfig(version_2_with_negative=True, null_score_diff_threshold=-1e9)
    result = answer_question(tiny_loaded, "Who rows the ferry?", CONTEXT, always)
    assert result.prediction.text == "" and result.prediction.alternatives  # best spans still listed
    never = answer_question(tiny_loaded, "Who rows the ferry?", CONTEXT, always.replace(null_score_diff_threshold=1e9))
    assert never.prediction.text == never.prediction.alternatives[0].text


def test_a_model_only_evaluated_on_a_cpu_runs_in_bf16_weights(tiny_model_dir: Path, tokenizer) -> None:
    features = featurize([Example("e", "Who wrote it?", "Ada wrote the first program in 1843.", ())], tokenizer,
                         QAConfig(), training=False).features
    trained, evaluated = load_model(str(tiny_model_dir)), load_model(str(tiny_model_dir))
    fp32_start, _ = run_model(trained.model, features, 8)
    assert set_up_precision(trained.model, True, torch.device("cpu")) is True  # training: fp32 masters
    assert next(trained.model.parameters()).dtype == torch.float32
    assert trained.model.config._attn_implementation == CPU_BF16_ATTENTION
    assert set_up_precision(evaluated.model, True, torch.device("cpu"), training=False) is True
    assert next(evaluated.model.parameters()).dtype == torch.bfloat16
    assert evaluated.model.qa_outputs.weight.dtype == torch.float32  # span scores from fp32 logits
    bf16_start, _ = run_model(evaluated.model, features, 8, bf16=True)  # no autocast needed over bf16 weights
    assert bf16_start.dtype == np.float32 and np.allclose(bf16_start, fp32_start, atol=0.1)
    fp32_again = load_model(str(tiny_model_dir))
    assert set_up_precision(fp32_again.model, False, torch.device("cpu"), training=False) is False
    assert next(fp32_again.model.parameters()).dtype == torch.float32


@pytest.mark.parametrize(("question", "context", "refused"), [
    ("Who?", "\u200b\u200b\u200b", "context has no words"), ("\u200b\u2060", "Fresnel did it.", "question has no words")])
def test_a_text_of_invisible_characters_only_is_refused_by_name(tiny_loaded, question, context, refused) -> None:
    """Zero-width characters pass a blank check, but the tokenizer drops them: without a word to read, the answer
    would be an empty one with no message."""
    with pytest.raises(ValueError, match=refused):
        answer_question(tiny_loaded, question, context)


@pytest.mark.parametrize(("question", "context", "refused"), [
    ("Who?", "Fresnel \ud800 designed it.", "context is not valid Unicode (an unpaired surrogate at character 8)"),
    ("Who \udcff?", "Fresnel did it.", "question is not valid Unicode (an unpaired surrogate at character 4)")])
def test_text_that_is_not_valid_unicode_is_refused_by_name(tiny_loaded, question, context, refused) -> None:
    """Found by a tester: a lone surrogate (a JSON escape such as \\ud800, or a byte that is not UTF-8 in a
    command-line argument) reached the tokenizer, which raised 'TypeError: TextInputSequence must be str'."""
    with pytest.raises(ValueError) as caught:
        answer_question(tiny_loaded, question, context)
    assert str(caught.value) == refused


def test_a_question_of_special_token_text_is_answered_as_text(tiny_loaded) -> None:
    """Found by a tester: the question "[CLS] [SEP]" was refused as "only invisible characters", since the
    tokenizer read the typed text as its own special tokens."""
    result = answer_question(tiny_loaded, "[CLS] [SEP]", "Fresnel designed the lens [PAD] in 1822.")
    assert result.windows == 1


def test_padding_to_a_multiple_stops_at_the_model_s_positions(tokenizer, tmp_path):
    """Batches pad to multiples of 8 on CUDA and of 16 on CPUs with AMX; a model with 40 positions took windows of
    40 tokens padded to 48, and failed ("The size of tensor a (48) must match the size of tensor b (40)")."""
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    BertForQuestionAnswering(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=64,
                                        max_position_embeddings=40)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    example = Example("q", "What did the mill grind?", " ".join(["The mill ground wheat for the village."] * 12), ())
    features = featurize([example], loaded.tokenizer, QAConfig(max_seq_length=40, doc_stride=16, max_query_length=16),
                         training=False).features
    assert max(len(f.input_ids) for f in features) == 40
    start_logits, _ = run_model(loaded.model, features, 8, batch_format=loaded.batch_format, multiple_of=16)
    assert start_logits.shape == (len(features), 40)


def test_token_logits_merge_windows_by_span_keeping_the_highest_and_the_first_name(tokenizer) -> None:
    """Two overlapping windows, and two tokens that share one span (as a byte-level tokenizer's bytes of one
    character do): one row per span, in context order, its highest logits, named by the first token seen."""
    context = "alpha beta gamma"
    ids = tokenizer.convert_tokens_to_ids(["[CLS]", "alpha", "beta", "gamma", "[SEP]"])
    first = Feature(0, "q", [ids[0], ids[1], ids[2], ids[4]], [0] * 4, [None, (0, 5), (6, 10), None])
    second = Feature(0, "q", [ids[0], ids[2], ids[3], ids[3], ids[4]], [0] * 5,
                     [None, (6, 10), (11, 16), (11, 16), None])
    merged = merge_token_logits(tokenizer, [(first, np.array([9.0, 1.0, 2.0, 9.0]), np.array([9.0, 3.0, 4.0, 9.0])),
                                            (second, np.array([9.0, 5.0, -1.0, 7.0, 9.0]),
                                             np.array([9.0, 0.0, 6.0, -2.0, 9.0]))], context)
    assert merged.tokens == ("alpha", "beta", "gamma") and merged.labels == ("alpha", "beta", "gamma")
    assert merged.offsets == ((0, 5), (6, 10), (11, 16))
    assert merged.start_logits.tolist() == [1.0, 5.0, 7.0] and merged.end_logits.tolist() == [3.0, 4.0, 6.0]
    empty = merge_token_logits(tokenizer, [(Feature(0, "q", [ids[0]], [0], [None]), np.zeros(1), np.zeros(1))], "")
    assert empty.tokens == () and len(empty.start_logits) == 0


def test_an_answer_merges_its_per_token_logits_only_when_they_are_read(tiny_loaded) -> None:
    """Found profiling the Ask path: merging every window's logits into one row per context token (for the plot)
    was a part of each answer's time on the model thread, which /answer never shows. The answer keeps its
    windows' logits; the merge happens where the plot is drawn, once."""
    context = " ".join([CONTEXT] * 12)  # several windows
    config = QAConfig(max_seq_length=64, doc_stride=16, max_query_length=16)
    result = answer_question(tiny_loaded, "Who designed the lens?", context, config)
    assert result.windows > 1 and "logits" not in vars(result)  # not merged yet
    merged = result.logits
    assert result.logits is merged and len(merged.offsets) == len(set(merged.offsets)) > 0
    assert all(context[a:b] == label for (a, b), label in zip(merged.offsets, merged.labels))


def test_windows_padded_to_fewer_lengths_score_as_unpadded(tiny_loaded) -> None:
    """A model attending in bf16 products pads its windows to multiples of 16 (batching.padding_multiple); the
    padding is masked, so every window's logits, and so its answers, are the model's own."""
    context = " ".join([CONTEXT] * 6)  # several windows of different lengths
    config = QAConfig(max_seq_length=64, doc_stride=16, max_query_length=16)
    _, config, features = question_windows(tiny_loaded, "Who designed the lens?", context, config)
    assert len({len(f.input_ids) for f in features}) > 1
    with torch.inference_mode():
        plain = run_model(tiny_loaded.model, features, 4, batch_format=tiny_loaded.batch_format, multiple_of=1)
        padded = run_model(tiny_loaded.model, features, 4, batch_format=tiny_loaded.batch_format, multiple_of=16)
    for row, feature in enumerate(features):
        length = len(feature.input_ids)
        for got, expected in zip(padded, plain):  # start, then end logits
            np.testing.assert_allclose(got[row, :length], expected[row, :length], atol=1e-4)
