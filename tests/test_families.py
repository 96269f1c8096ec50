"""Every model family through the product: train -> evaluate -> predict -> the app's answer, fp32 and int8."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from qa_core.batching import collate
from qa_core.config import QAConfig
from qa_core.data import Example, load_examples
from qa_core.evaluation import run_evaluation
from qa_core.features import build_features, featurize
from qa_core.inference import answer_examples, answer_question, run_model
from qa_core.modeling import fit_config, load_model
from qa_core.run_files import RECORDS_FILE
from qa_core.serving import ModelCache, int8_copy, warmup_batches
from qa_core.training import train
from tests.families import FAMILIES, POSITIONS, build_family, sample_texts

NAMES = [f.name for f in FAMILIES]
CONTEXT = ("The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named after "
           "the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889.")
QUESTION = "Who is the tower named after?"


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny random model folder per family, built once per session."""
    texts = sample_texts()
    root = tmp_path_factory.mktemp("families")
    return {f.name: build_family(f, root / f.name, texts) for f in FAMILIES}


def family_config(model_dir: Path, output_dir: Path, **overrides) -> QAConfig:
    """A few training steps on the sample data; windows longer than the tiny models' POSITIONS on purpose."""
    settings = dict(model_name_or_path=str(model_dir), train_file="sample", validation_file="sample",
                    output_dir=str(output_dir), max_seq_length=POSITIONS + 32, doc_stride=32, max_query_length=24,
                    max_steps=2, per_device_train_batch_size=4, per_device_eval_batch_size=16, max_train_samples=6,
                    max_eval_samples=3, learning_rate=1e-3, logging_steps=1, save_steps=100, seed=3)
    return QAConfig(**{**settings, **overrides})


def check_answer(text: str, span: tuple[int, int] | None, context: str = CONTEXT) -> None:
    assert span is not None and context[span[0]:span[1]] == text and text.strip() == text and text


@pytest.mark.parametrize("family", NAMES)
def test_train_evaluate_answer(family: str, family_dirs: dict[str, Path], tmp_path: Path) -> None:
    config = family_config(family_dirs[family], tmp_path / "run")
    result = train(config)
    assert result.status == "finished" and result.step == 2 and "f1" in result.metrics
    run = Path(result.output_dir)

    evaluated = run_evaluation(config.replace(model_name_or_path=str(run), output_dir=str(tmp_path / "eval")))
    assert len(evaluated.predictions) == 3
    records = (tmp_path / "eval" / RECORDS_FILE).read_text(encoding="utf-8").splitlines()
    assert len(records) == 3 and all(json.loads(r)["question"] for r in records)

    loaded = load_model(str(run))
    examples = load_examples("sample", "validation", 2).examples
    assert set(answer_examples(loaded, examples, config)) == {e.example_id for e in examples}

    answered, _, _ = ModelCache(fast=False).answer(str(run), QUESTION, CONTEXT)
    check_answer(answered.prediction.text, answered.prediction.span)
    quantized = answer_question(int8_copy(loaded), QUESTION, CONTEXT).prediction
    check_answer(quantized.text, quantized.span)


@pytest.mark.parametrize("family", NAMES)
def test_windows_follow_the_tokenizer(family: str, family_dirs: dict[str, Path]) -> None:
    """Each window starts at the tokenizer's CLS/BOS token, and no context token's span starts on a space."""
    tokenizer = load_model(str(family_dirs[family])).tokenizer
    examples = load_examples("sample", "validation", 5).examples
    features = featurize(examples, tokenizer, QAConfig(max_seq_length=48, doc_stride=16, max_query_length=16),
                         training=True).features
    assert features
    for feature in features:
        assert feature.input_ids[feature.cls_index] == tokenizer.cls_token_id
        context = examples[feature.example_index].context
        assert all(not context[s:e][:1].isspace() for s, e in filter(None, feature.offsets))
        assert feature.start_position != feature.cls_index or feature.end_position == feature.cls_index


def test_byte_level_bpe_offsets_leave_the_marked_space_out(family_dirs: dict[str, Path]) -> None:
    """RoBERTa's 'Ġword' tokens stand for ' word'; trim_offsets must keep their spans on the word alone."""
    tokenizer = load_model(str(family_dirs["roberta"])).tokenizer
    encoded = tokenizer(CONTEXT, return_offsets_mapping=True, add_special_tokens=False)
    pieces = zip(tokenizer.convert_ids_to_tokens(encoded["input_ids"]), encoded["offset_mapping"])
    marked = [CONTEXT[s:e] for token, (s, e) in pieces if token.startswith("Ġ") and len(token) > 1]
    assert len(marked) > 10 and all(text == text.strip() and text for text in marked)


def test_max_seq_length_is_clamped_with_one_warning(family_dirs: dict[str, Path],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    cache = ModelCache(fast=False)
    with caplog.at_level(logging.WARNING, logger="qa_core.modeling"):
        for _ in range(2):
            answered, _, _ = cache.answer(str(family_dirs["roberta"]), QUESTION, CONTEXT * 3)
            check_answer(answered.prediction.text, answered.prediction.span, CONTEXT * 3)
    clamped = [r for r in caplog.records if "max_seq_length" in r.getMessage()]
    assert len(clamped) == 1 and str(POSITIONS) in clamped[0].getMessage()


# family: (segment ids fed to the model, most tokens per window)
EXPECTED_INPUTS = {"bert": (True, POSITIONS), "distilbert": (False, POSITIONS), "roberta": (False, POSITIONS),
                   "albert": (True, POSITIONS), "electra": (True, POSITIONS), "deberta-v2": (False, POSITIONS),
                   "deberta-v3": (False, None), "xlm-roberta": (False, POSITIONS)}


@pytest.mark.parametrize("family", NAMES)
def test_batches_hold_what_the_model_takes(family: str, family_dirs: dict[str, Path]) -> None:
    loaded = load_model(str(family_dirs[family]))
    takes_segments, positions = EXPECTED_INPUTS[family]
    assert loaded.batch_format.token_type_ids is takes_segments and loaded.max_positions == positions
    assert loaded.batch_format.pad_token_id == loaded.tokenizer.pad_token_id
    features = featurize(load_examples("sample", "validation", 2).examples, loaded.tokenizer,
                         QAConfig(max_seq_length=48, doc_stride=16, max_query_length=16), training=False).features
    assert ("token_type_ids" in collate(features, loaded.batch_format)) is takes_segments
    quantized = int8_copy(loaded).model
    for inputs in warmup_batches(loaded):  # what the compiled copy is warmed up with
        assert quantized(**inputs).start_logits.shape == inputs["input_ids"].shape


@pytest.mark.parametrize("family", ["bert", "deberta-v2", "roberta"])
def test_a_tokenizer_that_pads_on_the_left_scores_each_window_as_alone(family_dirs: dict[str, Path], tmp_path: Path,
                                                                       family: str) -> None:
    """Found by an ML audit: batches were padded on the tokenizer's side, and a model with absolute position
    embeddings (BERT, DeBERTa-v2) saw a left-padded window at positions shifted by its padding: its logits depended
    on the batch (0.3 apart). Batches are padded on the right whatever the tokenizer says; labels stay on their
    tokens."""
    import shutil

    folder = shutil.copytree(family_dirs[family], tmp_path / family)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "padding_side": "left"}))
    loaded = load_model(str(folder))
    assert loaded.tokenizer.padding_side == "left"
    examples = load_examples("sample", "validation", 4).examples
    features = featurize(examples, loaded.tokenizer, QAConfig(max_seq_length=61, doc_stride=16, max_query_length=16),
                         training=True).features
    assert len({len(f.input_ids) for f in features}) > 1
    batch = collate(features, loaded.batch_format)
    for row, f in enumerate(features):
        assert batch["input_ids"][row, batch["start_positions"][row]] == f.input_ids[f.start_position]
        assert batch["input_ids"][row, batch["end_positions"][row]] == f.input_ids[f.end_position]
    assert max(len(f.input_ids) for f in features) % 8  # so padding to multiples of 8 reaches past the longest
    alone = run_model(loaded.model, features, 1, batch_format=loaded.batch_format)
    for multiple_of in (1, 8):  # 8: CUDA's padding for tensor cores, which may reach past the longest window
        padded = run_model(loaded.model, features, len(features), batch_format=loaded.batch_format,
                           multiple_of=multiple_of)
        assert padded[0].shape == alone[0].shape
        for f, p, a in zip(features, padded[0], alone[0]):
            np.testing.assert_allclose(p[:len(f.input_ids)], a[:len(f.input_ids)], rtol=1e-4, atol=1e-5)


def test_fit_config_keeps_windows_valid(family_dirs: dict[str, Path]) -> None:
    bert = load_model(str(family_dirs["bert"]))
    fitted = fit_config(QAConfig(max_seq_length=256, doc_stride=128, max_query_length=64), bert)
    assert (fitted.max_seq_length, fitted.max_query_length, fitted.doc_stride) == (POSITIONS, 30, 15)
    for fitting in (QAConfig(max_seq_length=48, doc_stride=16, max_query_length=16),
                    QAConfig(max_seq_length=64, doc_stride=8, max_query_length=40)):  # long questions, if they fit
        assert fit_config(fitting, bert) is fitting
    # RoBERTa pairs take four special tokens, one more than QAConfig's own check counts: a stride that fits BERT's
    # room loses only what the extra token takes (the largest stride that fits), not half the room
    roberta = load_model(str(family_dirs["roberta"]))
    tight = QAConfig(max_seq_length=64, doc_stride=36, max_query_length=24)
    assert fit_config(tight, roberta).doc_stride == 35
    assert fit_config(QAConfig(max_seq_length=64, doc_stride=44, max_query_length=16), roberta).doc_stride == 43
    with pytest.raises(ValueError, match="doc_stride"):  # the tokenizer itself would panic
        build_features(load_examples("sample", "validation", 1).examples, roberta.tokenizer, 64, 36, 24, False)
    deberta = load_model(str(family_dirs["deberta-v3"]))  # no position table: only the tokenizer bounds it
    assert fit_config(QAConfig(max_seq_length=512), deberta).max_seq_length == 512
    bounded = load_model(str(family_dirs["deberta-v3"]))
    bounded.tokenizer.model_max_length = 128
    assert fit_config(QAConfig(max_seq_length=512), bounded).max_seq_length == 128


def test_questions_of_many_bytes_are_cut_to_max_query_length(family_dirs: dict[str, Path]) -> None:
    """Byte-level BPE spells a character it has no token for in up to four byte tokens: a question of fewer
    characters than max_query_length can hold many more tokens, and filled a window past the stride (a panic)."""
    tokenizer = load_model(str(family_dirs["roberta"])).tokenizer
    context = " ".join(f"word{i}" for i in range(300))
    for characters in (40, 64):  # 160 and 256 byte tokens
        question = "\U0001D518" * characters  # a four-byte character no sample text holds
        example = Example("q", question, context, ())
        window = build_features([example], tokenizer, 384, 128, 64, training=False).features[0]
        asked = sum(1 for offset in window.offsets if offset is None) - tokenizer.num_special_tokens_to_add(pair=True)
        assert asked <= 64, characters


@pytest.mark.parametrize("family", ["roberta", "albert", "xlm-roberta"])
def test_a_question_is_cut_to_at_most_max_query_length_tokens(family_dirs: dict[str, Path], family: str) -> None:
    """Found by an ML audit: a question was cut at the end of its last allowed token, which a lone '▁' or the first
    byte piece of 'é' shares with the next token, so one token more survived; at the largest stride that fits, the
    windows then overflowed and the tokenizer panicked ("stride must be strictly less than max_len")."""
    from qa_core.features import truncate_questions
    from tests.families import sample_texts

    tokenizer = load_model(str(family_dirs[family])).tokenizer
    questions = [t for t in sample_texts() if t.endswith("?")] + ["Qué año fundó Zoë la tienda del café?"]
    for limit in range(4, 16):
        for cut in truncate_questions(questions, tokenizer, limit):
            assert len(tokenizer(cut, add_special_tokens=False)["input_ids"]) <= limit, (limit, cut)
    config = fit_config(QAConfig(max_seq_length=48, doc_stride=37, max_query_length=7), load_model(
        str(family_dirs[family])))
    long_context = " ".join(sample_texts()[:3])
    windows = build_features([Example("x", q, long_context, ()) for q in questions], tokenizer,
                             config.max_seq_length, config.doc_stride, config.max_query_length, training=False)
    assert all(len(f.input_ids) <= config.max_seq_length for f in windows.features)
