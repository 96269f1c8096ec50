"""Windows over long contexts: labels, offsets and question truncation."""

from __future__ import annotations

import copy
import pickle
from array import array

import pytest

from qa_core.config import QAConfig
from qa_core.data import Answer, Example
from qa_core.features import (CHUNK_SIZE, CLS_INDEX, Feature, Offsets, build_features, check_windows_reach_the_end,
                              featurize, featurize_in_chunks, label_window, window_limits)

WORDS = [f"w{i}" for i in range(400)]
LONG_CONTEXT = " ".join(WORDS)  # ~800 WordPiece tokens: many windows of 64


def example(context: str, answer: str, question: str = "which word is it?", qid: str = "e") -> Example:
    start = context.find(answer)
    return Example(qid, question, context, (Answer(answer, start if start >= 0 else None),))


def windows(tokenizer, examples, training=True, max_seq_length=64, doc_stride=16, max_query_length=16):
    return build_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length, training)


def span_text(feature, context: str) -> str:
    return context[feature.offsets[feature.start_position][0]:feature.offsets[feature.end_position][1]]


def test_long_context_is_split_and_every_window_fits(tokenizer) -> None:
    features = windows(tokenizer, [example(LONG_CONTEXT, "w350")], training=False).features
    assert len(features) > 5
    assert all(len(f.input_ids) <= 64 for f in features)
    covered = {span for f in features for span in f.offsets if span is not None}
    assert max(end for _, end in covered) == len(LONG_CONTEXT)  # the last token is in some window


def test_windows_that_stop_short_of_the_context_end_are_refused(tokenizer) -> None:
    """As tokenizers 0.23.1-0.23.2 cut them (their last overflowing window ends early): an error, not lost text."""
    short = " ".join(WORDS[:300])
    features = windows(tokenizer, [example(short, "w10")], training=False).features
    by_example = [list(features)]
    check_windows_reach_the_end([example(short, "w10")], by_example, tokenizer)  # the whole context: fine
    with pytest.raises(ValueError, match=r"example 'cut'.*end at character 1389 of 1889.*installed: .*tokenizers==0.23.3"):
        check_windows_reach_the_end([example(LONG_CONTEXT, "w10", qid="cut")], by_example, tokenizer)


def test_windows_of_a_left_truncating_tokenizer_pass_the_check(tokenizer) -> None:
    left = copy.deepcopy(tokenizer)  # the fixture is shared across the session
    left.truncation_side = "left"  # windows come from the end of the context backwards
    features = windows(left, [example(LONG_CONTEXT, "w5")], training=False).features
    assert max(span[1] for f in features for span in f.offsets if span) == len(LONG_CONTEXT)


def test_characters_the_tokenizer_drops_may_end_a_context(tokenizer) -> None:
    context = "The ferry leaves at ten.\x07\u200b \x00"  # control and format characters: no tokens
    assert windows(tokenizer, [example(context, "ten")]).features[0].start_position > 0


@pytest.mark.parametrize("answer", ["w0", "w1 w2", "w199", "w398 w399", "w250 w251 w252"])
def test_labels_point_at_the_answer_in_every_window_that_holds_it(tokenizer, answer: str) -> None:
    features = windows(tokenizer, [example(LONG_CONTEXT, answer)]).features
    labelled = [f for f in features if f.start_position != CLS_INDEX]
    assert labelled, "some window holds the answer"
    assert all(span_text(f, LONG_CONTEXT) == answer for f in labelled)
    assert all(f.end_position >= f.start_position for f in labelled)


def test_an_answer_of_invisible_characters_labels_no_window(tokenizer) -> None:
    """Found in review: an answer between two tokens (a zero-width space passes the loader's strip()) was labelled
    with its start after its end."""
    context = "Paris is big.\u200b London is bigger."
    answer = Example("z", "which?", context, (Answer("\u200b", context.index("\u200b")),))
    result = windows(tokenizer, [answer])
    assert result.skipped_examples == 1 and result.features == ()


def test_answer_cut_by_a_window_border_gets_cls_there(tokenizer) -> None:
    feature = windows(tokenizer, [example(LONG_CONTEXT, "w100")], training=False).features[0]
    first, last = next(o for o in feature.offsets if o), [o for o in feature.offsets if o][-1]
    span = (last[0], last[1] + 5)  # starts inside the window, ends beyond it
    assert label_window(feature, span).start_position == CLS_INDEX
    assert label_window(feature, (first[0], first[1])).start_position == feature.offsets.index(first)


def test_clip_partial_labels_the_part_of_the_answer_inside_the_window(tokenizer) -> None:
    feature = windows(tokenizer, [example(LONG_CONTEXT, "w100")], training=False).features[0]
    context_tokens = [i for i, o in enumerate(feature.offsets) if o]
    last = feature.offsets[context_tokens[-1]]
    before = feature.offsets[context_tokens[-2]]
    clipped = label_window(feature, (before[0], last[1] + 5), clip_partial=True)
    assert (clipped.start_position, clipped.end_position) == (context_tokens[-2], context_tokens[-1])
    outside = label_window(feature, (last[1] + 5, last[1] + 9), clip_partial=True)
    assert outside.start_position == CLS_INDEX


def test_answer_longer_than_a_window_is_skipped_for_training(tokenizer) -> None:
    answer = " ".join(WORDS[10:100])  # far more tokens than a 64-token window holds
    result = windows(tokenizer, [example(LONG_CONTEXT, answer), example(LONG_CONTEXT, "w5", qid="ok")])
    assert result.skipped_examples == 1
    assert {f.example_id for f in result.features} == {"ok"}


def test_unlocated_answer_is_skipped_for_training(tokenizer) -> None:
    result = windows(tokenizer, [example("a short context", "missing")])
    assert result.skipped_examples == 1 and result.features == ()


def test_unanswerable_questions_train_toward_cls_only_with_version_2(tokenizer) -> None:
    unanswerable = Example("none", "which word is missing?", LONG_CONTEXT, ())
    answerable = example(LONG_CONTEXT, "w5", qid="ok")
    v1 = windows(tokenizer, [unanswerable, answerable])
    assert v1.skipped_examples == 1 and {f.example_id for f in v1.features} == {"ok"}
    v2 = build_features([unanswerable, answerable], tokenizer, 64, 16, 16, training=True,
                        version_2_with_negative=True)
    negatives = [f for f in v2.features if f.example_id == "none"]
    assert v2.skipped_examples == 0 and len(negatives) > 1  # every window of the long context
    assert all(f.start_position == f.end_position == f.cls_index for f in negatives)
    assert [f for f in v2.features if f.example_id == "ok"] == [f for f in v1.features if f.example_id == "ok"]


def test_evaluation_windows_keep_example_id_and_context_only_offsets(tokenizer) -> None:
    features = windows(tokenizer, [example(LONG_CONTEXT, "w3", qid="q7")], training=False).features
    for f in features:
        assert f.example_id == "q7" and f.example_index == 0
        assert f.offsets[0] is None  # CLS
        question_tokens = f.token_type_ids.index(1)
        assert all(o is None for o in f.offsets[:question_tokens])


def test_long_question_is_truncated_not_the_context(tokenizer) -> None:
    question = "why " * 100 + "?"
    feature = windows(tokenizer, [example(LONG_CONTEXT, "w1", question=question)], training=False).features[0]
    assert feature.token_type_ids.count(0) == 16 + 2  # max_query_length + CLS + SEP


def test_unicode_offsets_cut_the_original_text(tokenizer) -> None:
    context = "Der Leuchtturm steht in Zürich 🌊 am Ufer, sagte Ørsted über São Paulo."
    features = windows(tokenizer, [example(context, "São Paulo")], max_seq_length=128).features
    assert span_text(features[0], context) == "São Paulo"


def test_only_questions_longer_than_the_limit_are_cut(tokenizer) -> None:
    from qa_core.features import truncate_questions

    short, long = "who?", "why " * 40 + "?"
    cut = truncate_questions([short, long, "a" * 20], tokenizer, 16)
    assert cut[0] == short and cut[2] == "a" * 20
    assert len(tokenizer(cut[1], add_special_tokens=False)["input_ids"]) == 16


def test_unknown_partial_answer_labels_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="partial_answer_labels"):
        QAConfig(partial_answer_labels="drop")


def test_featurizing_in_chunks_gives_the_same_windows_as_at_once(tokenizer) -> None:
    examples = [example(LONG_CONTEXT, f"w{10 * i}", qid=f"q{i}") for i in range(5)]
    config = QAConfig(max_seq_length=64, doc_stride=16, max_query_length=16)
    at_once = featurize(examples, tokenizer, config, training=True)
    chunks = list(featurize_in_chunks(examples, tokenizer, config, training=True, chunk_size=2))
    assert len(chunks) == 3
    assert tuple(f for chunk in chunks for f in chunk.features) == at_once.features
    assert sum(chunk.skipped_examples for chunk in chunks) == at_once.skipped_examples


def test_featurizing_in_chunks_rejects_an_empty_chunk(tokenizer) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        next(featurize_in_chunks([example(LONG_CONTEXT, "w1")], tokenizer, QAConfig(), training=False, chunk_size=0))


def test_packed_offsets_read_like_the_tuple_they_replace() -> None:
    spans = (None, (0, 3), (4, 9), None)
    offsets = Offsets(spans)
    assert offsets == spans and tuple(offsets) == spans and list(offsets) == list(spans) and len(offsets) == 4
    assert offsets[1] == (0, 3) and offsets[-1] is None and offsets[-2] == (4, 9) and offsets[1:3] == spans[1:3]
    assert offsets.index((4, 9)) == 2 and (0, 3) in offsets and list(filter(None, offsets)) == [(0, 3), (4, 9)]
    with pytest.raises(IndexError):
        offsets[4]
    assert pickle.loads(pickle.dumps(offsets)) == spans  # DataLoader workers receive windows pickled


def test_windows_are_stored_packed_whatever_the_caller_passes(tokenizer) -> None:
    feature = Feature(0, "e", [101, 7, 102], (0, 0, 0), ((0, 1), None, (2, 3)))
    assert isinstance(feature.input_ids, array) and isinstance(feature.offsets, Offsets)
    assert feature.input_ids == array("i", (101, 7, 102)) and feature.offsets[2] == (2, 3)
    built = featurize([example(LONG_CONTEXT, "w77")], tokenizer, QAConfig(max_seq_length=64, doc_stride=16,
                                                                           max_query_length=16), training=True)
    assert all(isinstance(f.input_ids, array) and isinstance(f.offsets, Offsets) for f in built.features)


def test_large_data_is_tokenized_a_chunk_at_a_time_with_the_same_windows(tokenizer) -> None:
    context = " ".join(WORDS[:60])  # a few windows each
    examples = [example(context, f"w{i % 60}", qid=f"q{i}") for i in range(CHUNK_SIZE + 3)]
    config = QAConfig(max_seq_length=64, doc_stride=16, max_query_length=16)
    whole = build_features(examples, tokenizer, 64, 16, 16, training=False).features
    assert featurize(examples, tokenizer, config, training=False).features == whole


def test_the_no_answer_position_is_the_special_cls_token_not_the_same_text_in_a_context() -> None:
    """XLNet puts <cls> last; a context that spells "<cls>" must not move the no-answer label into the context."""
    from transformers import XLNetTokenizer

    from tests.families import sample_texts, train_unigram

    specials = ["<unk>", "<s>", "</s>", "<cls>", "<sep>", "<pad>", "<mask>", "<eod>", "<eop>"]
    tokenizer = XLNetTokenizer(vocab=train_unigram(sample_texts(), specials, "<unk>", lowercase=False))
    context = "The beekeeper <cls> named Tomas keeps four hives at the far end of the plot."
    example = Example("x", "Who keeps the hives?", context, (Answer("Tomas", context.index("Tomas")),))
    features = build_features([example], tokenizer, 64, 16, 16, training=False).features
    assert tokenizer.cls_token_id in features[0].input_ids[:-1]  # the literal text became the special token
    for f in features:
        assert f.cls_index == len(f.input_ids) - 1 and f.offsets[f.cls_index] is None


def test_a_window_limit_refuses_data_that_makes_more_windows(tokenizer) -> None:
    """Many questions about one long context each make all of its windows: within window_limits (a public server's
    training job), data over the limit is refused while being cut, before all its windows are held."""
    config = QAConfig(max_seq_length=64, doc_stride=16, max_query_length=16)
    examples = [example(LONG_CONTEXT, f"w{i}", qid=f"q{i}") for i in range(150)]
    per_question = len(featurize(examples[:1], tokenizer, config, training=False).features)
    assert per_question > 10
    with window_limits(None, 100 * per_question):
        assert len(featurize(examples[:100], tokenizer, config, training=False).features) == 100 * per_question
        with pytest.raises(ValueError, match=rf"evaluation data: 150 questions make {150 * per_question:,} windows; "
                                             rf"this server cuts at most {100 * per_question:,} windows from each "
                                             r"evaluation data source \(QA_MAX_EVAL_WINDOWS\)"):
            featurize(examples, tokenizer, config, training=False)
        # cutting stops at the chunk that passes the limit: of more questions, the message counts those it cut
        with pytest.raises(ValueError, match=rf"evaluation data: the first 200 of 300 questions make "
                                             rf"{200 * per_question:,} windows; this server cuts at most"):
            featurize(examples * 2, tokenizer, config, training=False)
    with window_limits(100 * per_question):  # a training limit leaves evaluation data alone
        assert len(featurize(examples, tokenizer, config, training=False).features) == 150 * per_question
    assert len(featurize(examples, tokenizer, config, training=False).features) == 150 * per_question  # no limit


def test_skipping_unanswerable_questions_in_a_v1_run_points_at_squad_2(tokenizer, caplog) -> None:
    """Found by trying the CLI: SQuAD 2.0 data trained as v1.1 said only 'no locatable answer'."""
    unanswerable = Example("u", "who is it?", "Nobody is named here.", ())
    config = QAConfig(max_seq_length=64, doc_stride=16, max_query_length=16)
    with caplog.at_level("INFO", logger="qa_core.features"):
        featurize([example("the word is orange", "orange"), unanswerable], tokenizer, config, training=True)
    assert "skipped 1 of 2 examples" in caplog.text and "1 of them have no answer" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="qa_core.features"):
        featurize([unanswerable], tokenizer, config.replace(version_2_with_negative=True), training=True)
    assert "have no answer" not in caplog.text


@pytest.mark.parametrize("context, mapping, expected", [
    ("Who? \ufeff", [(0, 3), (3, 6)], [(0, 3), (3, 4)]),  # ALBERT answered '? \ufeff'
    ("\u200bFresnel\u200b", [(0, 8), (8, 9)], [(1, 8), None]),
    ("a\u2060\u00a0b", [(0, 1), (1, 3), (3, 4)], [(0, 1), None, (3, 4)])])
def test_no_context_token_starts_or_ends_on_an_invisible_character(context, mapping, expected) -> None:
    """Found by a tester: a span may not start or end on a space, but it ended on a zero-width no-break space (a
    format character, category Cf, not a space to str.isspace)."""
    from qa_core.features import context_offsets

    assert list(context_offsets(context, mapping, [1] * len(mapping))) == expected


def test_special_token_text_in_a_question_or_context_is_read_as_text(tokenizer) -> None:
    """Found by a tester: "[PAD]" typed into a context became the padding token (3,000 of them made 24 windows of
    nothing), and "[SEP]" in a question ended it early. Text is text: BERT's own tokenizer splits it too."""
    context = "The codes [SEP] and [PAD] are plain text. The ferry leaves at noon."
    features = windows(tokenizer, [example(context, "[PAD]", question="What does [SEP] separate?")]).features
    (feature,) = features
    assert list(feature.input_ids).count(tokenizer.sep_token_id) == 2  # the pair's own two, not the typed one
    assert tokenizer.pad_token_id not in feature.input_ids and span_text(feature, context) == "[PAD]"
    assert list(feature.input_ids).count(tokenizer.cls_token_id) == 1
