"""The Ask tab's handlers called as plain methods with the tiny BERT (nothing is downloaded): answers, refusals,
explanations, and the models it offers."""

from __future__ import annotations

import asyncio
import html
import json
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import gradio as gr
import pytest

from qa_core import answer_views, error_analysis, plots
from qa_core.fairness import Caller
from qa_core.service import QAService
from qa_core.settings import Settings
from qa_core.ui import app
from tests.ui_handlers import CONTEXT, LATE, QUESTION, cancel_at_once, copy_run, handlers


def part(block: str, name: str) -> str:
    """The text of one part of the Ask tab's answer block (qa-headline, qa-detail, qa-context), unescaped."""
    inner = re.search(f'<div class="{name}"[^>]*>(.*?)</div>', block, re.S).group(1)
    return html.unescape(re.sub(r"<[^>]+>", "", inner))


def marked(block: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r"<mark[^>]*>(.*?)</mark>", block, re.S)]


def test_ask_shows_the_answer_large_and_marks_it_in_the_context(ui, settings):
    shown = asyncio.run(ui.ask.ask_in_turn(settings.default_model, QUESTION, CONTEXT))
    block, alternatives = shown["answer"], shown["alternatives"]
    assert part(block, "qa-context") == CONTEXT
    answer = part(block, "qa-headline")
    assert marked(block) == [answer] and answer in CONTEXT and '<mark class="qa-span">' in block
    assert re.fullmatch(r"probability \d+%", part(block, "qa-detail"))
    assert "probability" in shown["score"] and shown["message"] == ""
    assert 1 <= len(alternatives) <= 5 and alternatives["answer"].iloc[0] == answer
    assert alternatives["probability"].sum() <= 1.0 + 1e-6
    assert shown["plot"].data[0].name == "start logit"
    assert shown["notice"] == gr.update(visible=False)  # the tiny model was saved with a QA head


def test_the_embedded_model_says_it_has_no_qa_head(ui):
    shown = asyncio.run(ui.ask.ask_in_turn("embedded", QUESTION, CONTEXT))
    assert shown["message"] == "" and shown["notice"] == gr.update(visible=True)


@pytest.mark.parametrize("question, context, expected", [
    ("", CONTEXT, "question is empty"), ("   ", CONTEXT, "question is empty"), (QUESTION, "", "context is empty"),
    (QUESTION, "word " * 3001, "15,005 characters; this server answers contexts of up to 15,000"),
    (QUESTION, "中" * 2_000_000, "2,000,000 characters"), ("why " * 200, CONTEXT, "question has 800 characters"),
    (QUESTION, None, "context is empty")])
def test_bad_questions_get_a_message(ui, question, context, expected):
    shown = asyncio.run(ui.ask.ask_in_turn("", question, context))
    assert shown["answer"] == "" and shown["plot"] is None and len(shown["alternatives"]) == 0
    assert shown["message"].startswith("Cannot answer") and expected in shown["message"]


def test_a_context_over_the_window_limit_is_refused_before_the_model_runs(settings):
    ui = handlers(settings.__class__(**{**settings.__dict__, "max_context_windows": 4}))
    long = " ".join(["The keeper wound the clockwork every night."] * 120)  # under the character limit
    message = asyncio.run(ui.ask.ask_in_turn("", "What did the keeper wind?", long))["message"]
    assert "windows of 256 tokens; this server answers up to 4" in message
    shorter = " ".join(long.split()[:100])
    assert asyncio.run(ui.ask.ask_in_turn("", "What did the keeper wind?", shorter))["message"] == ""


def test_unknown_model_gets_a_message(ui, tmp_path):
    shown = asyncio.run(ui.ask.ask_in_turn(str(tmp_path / "nowhere"), QUESTION, CONTEXT))
    assert "looked for a local folder" in shown["message"]


@pytest.mark.parametrize("context", [
    "<script>alert('x')</script> <b>Fresnel</b> designed the lens.", "Der Leuchtturm wurde 1823 gebaut. 灯塔 🚢🌊",
    "مرحبا بالعالم " * 20])
def test_odd_text_comes_back_verbatim_as_text(ui, context):
    shown = asyncio.run(ui.ask.ask_in_turn("", "<img src=x onerror=alert(1)> who? 🤔", context))
    assert part(shown["answer"], "qa-context") == context and "<script>" not in shown["answer"]
    assert "<b>" not in shown["answer"] and all(m in context for m in marked(shown["answer"]))


def test_a_context_at_the_limits_is_answered(ui):
    context = " ".join(["The keeper wound the clockwork every night."] * 60)
    shown = asyncio.run(ui.ask.ask_in_turn("", "What did the keeper wind?", context))
    assert shown["message"] == "" and int(shown["score"].split(" window")[0].split()[-1]) > 1
    assert len(shown["plot"].data[0].x) > 400  # the plot covers the whole context


def test_ten_people_asking_at_once_all_get_answers(ui):
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda i: asyncio.run(ui.ask.ask_in_turn("", f"{QUESTION} {i}", CONTEXT)), range(10)))
    assert all(r["message"] == "" and r["answer"] for r in results)


def test_a_run_answers_with_its_own_settings(ui, tiny_run):
    used = ui.service.models.answer(str(tiny_run), QUESTION, CONTEXT)
    assert used[0].windows == 1
    entry_config = ui.service.models._entry(str(tiny_run)).config
    assert (entry_config.max_seq_length, entry_config.doc_stride) == (128, 32)  # run.json's, not the defaults


def test_a_long_context_marks_one_span_and_shows_it_escaped(ui):
    block = asyncio.run(ui.ask.ask_in_turn("", "Who was the last keeper?", LATE))["answer"]
    assert part(block, "qa-context") == LATE and len(marked(block)) == 1
    assert 'class="qa-context"' in block  # the box the page scrolls to the mark (tests/test_browser.py)


def test_a_squad2_run_that_abstains_says_so_and_keeps_the_best_spans(ui, tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "v2-run")
    (run / "eval_metrics.json").write_text(json.dumps({"best_f1_thresh": -1e6}), encoding="utf-8")  # always abstain
    shown = asyncio.run(ui.ask.ask_in_turn(str(run), QUESTION, CONTEXT))
    block = shown["answer"]
    assert part(block, "qa-headline") == "No answer in this text" and "qa-abstained" in block
    assert "null score" in part(block, "qa-detail") and "dashed span" in part(block, "qa-detail")
    assert '<mark class="qa-passed-over">' in block and marked(block)[0] == shown["alternatives"]["answer"].iloc[0]
    assert len(shown["alternatives"]) >= 1
    # Found by a tester: the long explanation was printed again in the Score box; it is said once, under the answer
    # (and "No answer in this text" once, as the headline).
    detail = part(block, "qa-detail")
    assert "above threshold -1000000.00" in detail and "No answer" not in detail  # the threshold it answers at
    assert "threshold" not in shown["score"] and "No answer" not in shown["score"]
    null_score = float(re.search(r"null score (-?[\d.]+)", detail).group(1))
    assert shown["score"].startswith(f"score {null_score:.2f} (the null score) · 1 window ·"), shown["score"]
    # frames the span passed over
    why = asyncio.run(ui.ask.why_in_turn(shown["answered"], str(run), QUESTION, CONTEXT))["why_plot"]
    assert [a.text for a in why.layout.annotations] == [plots.PASSED_OVER]


def test_an_abstained_answer_marks_and_explains_the_span_passed_over_as_the_errors_tab_does(ui, tiny_run, tmp_path):
    """Found by a tester: where a SQuAD 2.0 run abstained, the Ask tab's logit plot marked nothing and its Why note
    did not say that it explained the span passed over, while the Errors tab dashes that span and says so."""
    run = copy_run(tiny_run, tmp_path / "v2-run")
    (run / "eval_metrics.json").write_text(json.dumps({"best_f1_thresh": -1e6}), encoding="utf-8")  # always abstain
    shown = asyncio.run(ui.ask.ask_in_turn(str(run), QUESTION, CONTEXT))
    passed = marked(shown["answer"])[0]
    assert [a.text for a in shown["plot"].layout.annotations] == [plots.PASSED_OVER]
    note = asyncio.run(ui.ask.why_in_turn(shown["answered"], str(run), QUESTION, CONTEXT))["why_note"]
    assert note.startswith(f"The model abstained on this question: these attributions explain the best span it "
                           f"passed over, {passed!r}. "), note
    answered = asyncio.run(ui.ask.ask_in_turn("", QUESTION, CONTEXT))  # the default model answers
    assert [a.text for a in answered["plot"].layout.annotations] == ["predicted"]
    assert "abstained" not in asyncio.run(ui.ask.why_in_turn(answered["answered"], "", QUESTION, CONTEXT))["why_note"]


def test_the_top_answers_list_each_text_once(ui):
    """Found by a tester: "10th" twice in the top answers, two occurrences of one word, which the table (no place
    shown) cannot tell apart; the context marks the best one. /answer, which gives each span's place, keeps both."""
    repeated = "Ann. Ann. Ann. Ann. Ann. Ann. Ann. Ann."  # the tiny BERT ranks two "Ann." spans in its top 5
    texts = list(asyncio.run(ui.ask.ask_in_turn("", "Who?", repeated))["alternatives"]["answer"])
    assert len(texts) == len(set(texts)) and "Ann." in texts, texts
    spans = asyncio.run(ui.service.answer_json("", "Who?", repeated))["alternatives"]
    assert [a["answer"] for a in spans].count("Ann.") >= 2 and len({a["answer"] for a in spans}) == 5 == len(texts)


def test_a_calibrated_run_shows_scaled_probabilities(ui, tiny_run, tmp_path):
    from qa_core import calibration

    run = copy_run(tiny_run, tmp_path / "calibrated-run")
    # a tiny evaluation: too few questions for a temperature
    too_few = asyncio.run(ui.ask.ask_in_turn(str(run), QUESTION, CONTEXT))
    assert "(uncalibrated: too few evaluation questions to calibrate" in part(too_few["answer"], "qa-detail")
    (run / calibration.CALIBRATION_FILE).unlink()  # evaluation stored one; without it Ask shows raw probabilities
    plain = asyncio.run(ui.ask.ask_in_turn(str(run), QUESTION, CONTEXT))
    fitted = calibration.fit_calibration(error_analysis.run_records(str(run)))
    calibration.write_calibration(run, calibration.replace(fitted, temperature=3.0, unfitted=None,
                                                            questions=calibration.MIN_CALIBRATION_QUESTIONS))
    scaled = asyncio.run(ui.ask.ask_in_turn(str(run), QUESTION, CONTEXT))
    assert "calibrated, temperature 3.00" in part(scaled["answer"], "qa-detail")
    assert "calibrated" not in part(plain["answer"], "qa-detail")
    first = (plain["alternatives"]["probability"].iloc[0], scaled["alternatives"]["probability"].iloc[0])
    assert first[1] != first[0] and scaled["alternatives"]["probability"].sum() <= 1.0 + 1e-6
    (run / calibration.CALIBRATION_FILE).write_text("not json", encoding="utf-8")
    broken = asyncio.run(ui.ask.ask_in_turn(str(run), QUESTION, CONTEXT))  # a broken file: answered, uncalibrated
    assert broken["message"] == "" and part(broken["answer"], "qa-detail") == part(plain["answer"], "qa-detail")


def test_text_the_vocabulary_cannot_read_gets_a_warning(ui):
    chinese = "灯塔的透镜是由奥古斯丁·菲涅耳在十九世纪初设计的。灯塔守护者曾经住在这里。" * 3
    shown = asyncio.run(ui.ask.ask_in_turn("", "谁设计了透镜？", chinese))
    assert "unknown to this model's vocabulary ([UNK])" in shown["message"]
    assert asyncio.run(ui.ask.ask_in_turn("", QUESTION, CONTEXT))["message"] == ""
    # A quarter unknown is not "most of this text": the warning says how much it cannot read.
    quarter = answer_views.unknown_warning(["a", "[UNK]", "b", "c"], "[UNK]")
    assert quarter.startswith("⚠ 25% of") and "most" not in quarter
    assert "most of this text" in answer_views.unknown_warning(["[UNK]", "[UNK]", "b"], "[UNK]")


def test_unknown_emoji_are_not_blamed_on_the_language(ui):
    """Emoji in an English context are [UNK] to a WordPiece vocabulary: the words are read, so the advice is about
    the symbols, not a model for another language; unknown letters (Chinese) still get that advice."""
    emoji = " ".join(f"{word} 🌊🚢" for word in CONTEXT.split())
    message = asyncio.run(ui.ask.ask_in_turn("", QUESTION, emoji))["message"]
    assert "unknown to this model's vocabulary" in message and "trained for this language" not in message
    assert "emoji or symbols" in message, message
    chinese = "灯塔的透镜是由奥古斯丁·菲涅耳在十九世纪初设计的。" * 3
    assert "trained for this language" in asyncio.run(ui.ask.ask_in_turn("", "谁设计了透镜？", chinese))["message"]


def test_why_this_answer_shows_attributions_within_the_budget(ui):
    answered = asyncio.run(ui.ask.ask_in_turn("", QUESTION, CONTEXT))["answered"]
    shown = asyncio.run(ui.ask.why_in_turn(answered, "", QUESTION, CONTEXT))
    assert [t.type for t in shown["why_plot"].data] == ["heatmap"]
    seconds = float(re.search(r"in ([\d.]+) s", shown["why_note"]).group(1))
    assert seconds < 5.0 + 2.0  # the local budget, plus the answering pass before it
    assert plots.ATTRIBUTION_LEGEND in shown["why_note"] and "changed" not in shown["why_note"]
    refused = asyncio.run(ui.ask.ask_in_turn("", "", CONTEXT))
    assert refused["answered"] is None  # no answer shown: nothing to explain
    refused_why = asyncio.run(ui.ask.why_in_turn(refused["answered"], "", QUESTION, CONTEXT))
    assert refused_why["why_note"].startswith("No explanation: ask")


def test_why_this_answer_explains_the_answer_shown_after_the_boxes_are_edited(ui):
    """The answer on the page is of the text as answered: its explanation is too, and says the boxes changed."""
    answered = asyncio.run(ui.ask.ask_in_turn("", QUESTION, CONTEXT))["answered"]
    edited = asyncio.run(ui.ask.why_in_turn(answered, "", "How often does the ferry cross?",
                                            "The ferry crosses the bay twice a day."))
    tokens = edited["why_plot"].data[0].text[0]
    assert "lens" in tokens and "ferry" not in tokens
    assert "changed after this answer" in edited["why_note"] and "Answer again" in edited["why_note"]
    assert "changed" in asyncio.run(ui.ask.why_in_turn(answered, "another-model", QUESTION, CONTEXT))["why_note"]


def test_explanations_take_turns_between_visitors_and_each_has_few_in_flight(settings):
    """'Why this answer?' computes on one thread beside the model thread: a stranger's many explanations take turns
    with another visitor's instead of going first, and those past QA_MAX_CALLER_REQUESTS are refused at once."""
    ui = handlers(Settings(settings.runs_root, settings.default_model, training_enabled=False, fast_inference=False,
                           public=True, max_caller_requests=2))
    stranger, visitor = gr.Request(session_hash="stranger"), gr.Request(session_hash="visitor")
    answered = asyncio.run(ui.ask.ask_in_turn("", QUESTION, CONTEXT, stranger))["answered"]
    gate, finished = threading.Event(), []
    held = ui.service.explainer.submit(Caller("192.0.2.1"), gate.wait, 30)  # the thread is busy explaining

    def why(request: gr.Request, name: str) -> str:
        note = asyncio.run(ui.ask.why_in_turn(answered, "", QUESTION, CONTEXT, request))["why_note"]
        finished.append(name)
        return note
    with ThreadPoolExecutor(6) as pool:
        strangers = [pool.submit(why, stranger, "stranger") for _ in range(5)]
        deadline = time.monotonic() + 30  # the first explanation imports captum
        while sum(f.done() for f in strangers) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # two wait for their turn, three came back refused
        refusals = [f.result(0) for f in strangers if f.done()]
        visitors = pool.submit(why, visitor, "visitor")
        time.sleep(0.2)
        gate.set()
        notes = [f.result(60) for f in (*strangers, visitors)]
    assert held.result(0) and len(refusals) == 3
    assert all("already have 2 explanations" in note and "QA_" not in note for note in refusals)
    assert finished[3:] == ["stranger", "visitor", "stranger"]  # first come, first served: the visitor last
    assert all("integrated gradients" in note or "gradient" in note for note in notes if note not in refusals)


def test_an_old_explanation_is_cleared_by_a_new_answer_an_error_or_another_model(ui, settings):
    cleared = {"why_plot": None, "why_note": ""}
    answered = asyncio.run(ui.ask.ask_in_turn("", QUESTION, CONTEXT))["answered"]
    assert asyncio.run(ui.ask.why_in_turn(answered, "", QUESTION, CONTEXT))["why_plot"] is not None
    assert {k: asyncio.run(ui.ask.ask_in_turn("", QUESTION, CONTEXT))[k] for k in cleared} == cleared
    # refused: no stale explanation either
    assert {k: asyncio.run(ui.ask.ask_in_turn("", "", CONTEXT))[k] for k in cleared} == cleared
    assert ui.ask.clear_why() == cleared
    demo = app.build_app(settings)
    ids = {c.elem_id: c._id for c in demo.blocks.values() if getattr(c, "elem_id", None)}
    events = {d["api_name"]: d for d in demo.config["dependencies"]}
    for name in ("ui_ask", "ui_ask_submit", "ui_forget_why"):
        assert {ids["ask-why-note"], ids["ask-why-plot"]} <= set(events[name]["outputs"]), name
    assert [ids["ask-model"], "change"] in [list(t) for t in events["ui_forget_why"]["targets"]]


def test_a_run_without_a_model_gets_no_resume_advice_where_the_server_does_not_train(settings, tmp_path):
    run = tmp_path / "runs" / "20250101-000000-stopped"
    cancel_at_once(settings, run, max_steps=2, max_train_samples=4, max_eval_samples=2)
    ui = handlers(Settings(tmp_path / "runs", settings.default_model, training_enabled=False, fast_inference=False))
    refused = asyncio.run(ui.ask.ask_in_turn(run.name, QUESTION, CONTEXT))["message"]
    assert "is cancelled and has no final model" in refused and "Train tab" not in refused


@pytest.mark.parametrize("public", [False, True])
def test_a_run_as_the_default_model_is_found_and_shown_by_name(settings, tiny_run, public):
    for default in (tiny_run.name, str(tiny_run)):
        ui = handlers(Settings(settings.runs_root, default, training_enabled=False, fast_inference=False,
                               public=public))
        shown = asyncio.run(ui.ask.ask_in_turn("", QUESTION, CONTEXT))
        assert shown["message"] == "" and shown["answer"], default
        values = [value for _, value in ui.service.model_choices()]
        assert values[0] == tiny_run.name and values.count(tiny_run.name) == 1
        assert not any(str(tiny_run.parent) in f"{label} {value}" for label, value in ui.service.model_choices())
        assert asyncio.run(ui.service.answer_json("", QUESTION, CONTEXT))["model"] == tiny_run.name
        assert app.build_app(ui.service.settings)  # the pickers' preselected value is one of their choices
    quick = QAService(Settings(settings.runs_root, tiny_run.name, training_enabled=True, fast_inference=False,
                               public=public)).quick_config()
    shutil.rmtree(quick.output_dir)  # only its config was wanted: the quick fine-tune starts from the run's folder
    assert quick.model_name_or_path == str(tiny_run.resolve())


def test_the_no_head_notice_suggests_only_what_the_server_allows(settings):
    """A public server's notice suggested typing a hub id, which it refuses, and a server without training the
    quick fine-tune."""
    from qa_core.ui.ask import no_head_notice

    public = replace(settings, public=True, training_enabled=False)
    assert "hub id" not in no_head_notice(public) and "quick fine-tune" not in no_head_notice(public)
    assert no_head_notice(public).endswith("random.** Choose a finished run from the list in the model box.")
    assert "or org/squad-model" in no_head_notice(replace(public, allowed_models=("org/squad-model",)))
    local = no_head_notice(replace(settings, training_enabled=True))
    assert "quick fine-tune" in local and "hub id" in local


def test_a_public_server_shows_a_model_folder_default_by_its_name_not_its_path(settings, tiny_model_dir):
    """QA_DEFAULT_MODEL may be a folder outside the runs folder: visitors see and name it by its folder name, and
    no picker, answer or message shows where it lies on the server."""
    public = Settings(settings.runs_root, str(tiny_model_dir), training_enabled=True, fast_inference=False,
                      public=True)
    ui = handlers(public)
    shown = [f"{label} {value}" for label, value in ui.service.model_choices()]
    assert shown[0].split()[-1] == tiny_model_dir.name
    assert not any(str(tiny_model_dir.parent) in text for text in shown)
    for asked in ("", tiny_model_dir.name):
        answered = asyncio.run(ui.service.answer_json(asked, QUESTION, CONTEXT))
        assert answered["model"] == tiny_model_dir.name and answered["answer"]
    with pytest.raises(ValueError, match="not offered"):
        ui.service.check_question(str(tiny_model_dir), QUESTION, CONTEXT)  # a stranger never names the path
    assert app.build_app(public)  # which preloads the default
    quick = QAService(public).quick_config()
    shutil.rmtree(quick.output_dir)  # only its config was wanted
    assert quick.model_name_or_path == str(tiny_model_dir)
