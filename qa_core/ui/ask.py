"""The Ask tab: a question about a context, the answer in it, alternatives, per-token logits and attributions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import gradio as gr

from qa_core import answer_views, plots
from qa_core.hosting import offered
from qa_core.inference import AnswerResult
from qa_core.modeling import LoadedModel
from qa_core.service import QAService
from qa_core.settings import Settings
from qa_core.ui.common import (ANSWERS, EXPLAIN, HUB_HINT, PRIVATE, QUICK_MINUTES, Outputs, by_name, caller_of,
                               model_picker)
from qa_core.wording import count


def no_head_notice(settings: Settings) -> str:
    """What to do about a model without a fine-tuned head, naming only what this server lets a visitor do: a public
    one refused the hub ids the notice suggested, and one without training the quick fine-tune."""
    steps = [f"Fine-tune it first: the quick fine-tune trains it on the bundled sample in about {QUICK_MINUTES} "
             f"minutes on a laptop CPU."] if settings.training_enabled else []
    if settings.public:
        steps.append(f"{'You can also choose' if steps else 'Choose'} {offered(settings, default=False)} in the "
                     f"model box.")
    else:
        steps.append(f"Online, you can also type the hub id of a model fine-tuned on SQuAD in the model box, e.g. "
                     f"`{HUB_HINT}`.")
    return " ".join(["**This model has no fine-tuned question answering head yet, so its answers are close to "
                     "random.**", *steps])


# The answer block: the answer large; the context in a box of fixed height that wraps between words and scrolls.
# Text keeps the body colour (the theme's subdued grey read faintly on white); an abstention is set apart by italics
# and a lighter shade of that colour, which holds in the dark theme too.
ANSWER_CSS = """
.qa-answer { display: flex; flex-direction: column; gap: 0.4rem; }
.qa-headline { font-size: 1.9rem; font-weight: 650; line-height: 1.25; overflow-wrap: anywhere; }
.qa-long-answer .qa-headline { font-size: 1.4rem; }
.qa-abstained .qa-headline { opacity: 0.7; font-style: italic; }
.qa-detail { font-size: 0.95rem; }
.qa-context { position: relative; max-height: 18rem; overflow-y: auto; padding: 0.6rem 0.8rem;
  border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg); white-space: pre-wrap;
  word-break: normal; overflow-wrap: break-word; line-height: 1.55; }
#ask-context textarea, #ask-question textarea { unicode-bidi: plaintext; }  /* each line in its own direction */
.qa-context mark { background: #ffb347; color: #000; border-radius: 3px; padding: 0 2px; }
.qa-context mark.qa-passed-over { background: transparent; outline: 2px dashed #e08a00; color: inherit; }
"""
# After every new answer, scroll the context box (not the page) so the marked span sits a third of the way down.
SCROLL_JS = """
const scroll = () => {
  const box = element.querySelector('.qa-context');
  const mark = box && box.querySelector('mark');
  if (mark) box.scrollTop = Math.max(0, mark.offsetTop - box.clientHeight / 3);
};
watch('value', scroll);
scroll();
"""
# An explanation belongs to one answer: a new answer, a refusal or another model takes it off the page.
NO_EXPLANATION = {"why_plot": None, "why_note": ""}
# Said first: on a phone the note scrolls, and this changes how the rest is read.
EDITED = ("The question, context or model changed after this answer: this explains the answer shown; Answer again "
          "to explain the new one.\n")


def no_answer() -> dict[str, Any]:
    """The Ask tab's answer outputs emptied: none came back, or another question and context arrived (Send to Ask),
    which the answer shown before does not belong to."""
    return {"answer": "", "score": "", "alternatives": answer_views.alternatives_table(None), "plot": None,
            "notice": gr.update(visible=False), "answered": None, **NO_EXPLANATION}


@dataclass(frozen=True)
class Answered:
    """What the answer on the page answered: "Why this answer?" explains that, whatever the boxes say now."""

    model: str
    question: str
    context: str
    abstained: bool = False  # a SQuAD 2.0 answer that abstained: it explains the best span, passed over
    span: tuple[int, int] | None = None  # the shown span's characters in the context (the one passed over, there)

    @property
    def passed_over(self) -> tuple[int, int] | None:
        return self.span if self.abstained else None

    def of(self, model: str, question: str, context: str) -> bool:
        """Whether this is the answer to what the boxes say now."""
        return (self.model, self.question, self.context) == (model, question, context)


class AskHandlers:
    """The Ask tab's event handlers: each calls the service and returns its outputs by name."""

    def __init__(self, service: QAService) -> None:
        self.service = service

    async def ask_in_turn(self, model: str, question: str, context: str,
                          request: gr.Request | None = None) -> Outputs:
        """The page's Answer: waits for the model and its turn holding no thread, then lays the answer out in a
        worker thread (plots take a while for a long context)."""
        try:
            answered = await self.service.answer_in_turn(model, question, context, caller=caller_of(request))
        except (ValueError, OSError, RuntimeError) as err:
            return {**no_answer(), "message": f"Cannot answer: {self.service.for_caller(err)}"}
        return await asyncio.to_thread(self.show_answer, model, question, context, *answered)

    def show_answer(self, model: str, question: str, context: str, result: AnswerResult, loaded: LoadedModel,
                    seconds: float) -> Outputs:
        """The answer on the page: the answer large in its context, the score line, alternatives, the logit plot."""
        result, temperature, uncalibrated = self.service.calibrate(result, loaded)
        prediction = result.prediction
        top = prediction.alternatives[0] if prediction.alternatives else None
        headline, detail = answer_views.answer_headline(result, temperature, uncalibrated)
        abstained = prediction.abstained or top is None
        span = prediction.span or ((top.start, top.end) if top else None)
        passed = span if abstained else None  # the best span, dashed in the context and the plot (as in Errors)
        return {"answer": answer_views.answer_html(result.context, span, headline, detail, abstained),
                "score": answer_views.score_line(prediction, result.windows, seconds),
                "alternatives": answer_views.alternatives_table(result),
                "plot": plots.logit_figure(result.logits, prediction.span, passed_over=passed),
                "message": answer_views.unknown_warning(result.logits.tokens, loaded.tokenizer.unk_token,
                                                 texts=[result.context[a:b] for a, b in result.logits.offsets]),
                "notice": gr.update(visible=not loaded.has_qa_head),
                "answered": Answered(model, question, context, abstained, span), **NO_EXPLANATION}

    @staticmethod
    def clear_why() -> Outputs:
        return dict(NO_EXPLANATION)

    async def why_in_turn(self, answered: Answered | None, model: str, question: str, context: str,
                          request: gr.Request | None = None) -> Outputs:
        """Attributions of the shown answer's start and end scores over the window's tokens, and the time they took:
        of the text and model it answered, saying so when the boxes (model, question, context) changed since."""
        if answered is None:
            return {"why_plot": None, "why_note": "No explanation: ask a question about a context first"}
        try:
            attribution = await self.service.attribute(answered.model, answered.question, answered.context,
                                                       answered.span, caller=caller_of(request))
        except (ValueError, OSError, RuntimeError) as err:
            return {"why_plot": None, "why_note": f"No explanation: {self.service.for_caller(err)}"}
        steps = f" with {count(attribution.steps, 'step')}" if attribution.steps else ""
        window = f" · window {attribution.window + 1} of {attribution.windows}" if attribution.windows > 1 else ""
        edited = "" if answered.of(model, question, context) else EDITED
        return {"why_plot": plots.attribution_figure(attribution, answered.abstained),
                "why_note": f"{edited}{answer_views.explained_note(answered.context, answered.passed_over)}"
                            f"{attribution.method}{steps} in {attribution.seconds:.1f} s{window}: "
                            f"{plots.ATTRIBUTION_LEGEND}."}


def build_ask_tab(service: QAService) -> dict[str, Any]:
    ui = AskHandlers(service)
    with gr.Tab("Ask", id="ask"):
        model = model_picker(service, "Model", HUB_HINT, elem_id="ask-model")
        with gr.Row():
            with gr.Column(scale=3):
                # No maxlength: the browser would cut a long paste without a word (losing, say, the sentence with
                # the answer); the server refuses text over its limits instead, naming the length and the limit.
                limits = service.settings
                context = gr.Textbox(label="Context", lines=8, max_lines=20, elem_id="ask-context",
                                     info=f"Up to {limits.max_context_chars:,} characters")
                question = gr.Textbox(label="Question", lines=1, elem_id="ask-question",
                                      info=f"Up to {limits.max_question_chars:,} characters")
                button = gr.Button("Answer", variant="primary", elem_id="ask-button")
            with gr.Column(scale=2):
                outputs = {"answer": gr.HTML("", css_template=ANSWER_CSS, js_on_load=SCROLL_JS, label="Answer",
                                             elem_id="ask-answer"),
                           "score": gr.Textbox(label="Score", interactive=False, lines=2, max_lines=4,
                                               elem_id="ask-score"),
                           "message": gr.Textbox(label="Message", interactive=False, lines=2, max_lines=4,
                                                 elem_id="ask-message")}
                with gr.Group(visible=False) as outputs["notice"]:
                    gr.Markdown(no_head_notice(service.settings))
                    quick = gr.Button(f"Quick fine-tune in the Train tab (about {QUICK_MINUTES} min)",
                                      visible=service.settings.training_enabled)
        outputs["alternatives"] = gr.Dataframe(answer_views.alternatives_table(None), label="Top answers",
                                               interactive=False, wrap=True, column_widths=["8%", "52%", "40%"],
                                               elem_id="ask-alternatives")
        outputs["plot"] = gr.Plot(label="Start and end logits per token", elem_id="ask-plot")
        why = gr.Button("Why this answer?", elem_id="ask-why")
        explained = {"why_note": gr.Textbox(label="Attributions", interactive=False, lines=3, max_lines=8,
                                                elem_id="ask-why-note"),
                     "why_plot": gr.Plot(label="Attributions per token", elem_id="ask-why-plot")}
        answered = gr.State(None)  # an Answered, or None while no answer is shown; in the tab, as Tabs hold tabs
        rows, titles = answer_views.sample_examples()
        gr.Examples(rows, [context, question], example_labels=titles, label="Examples (the bundled sample)",
                    api_name="ui_example", **PRIVATE)
    asked = {**outputs, **explained, "answered": answered}
    event = dict(fn=by_name(ui.ask_in_turn, asked), inputs=[model, question, context], outputs=list(asked.values()),
                 **ANSWERS, **PRIVATE)
    button.click(**event, api_name="ui_ask")
    question.submit(**event, api_name="ui_ask_submit")
    model.change(by_name(ui.clear_why, explained), None, list(explained.values()), api_name="ui_forget_why",
                 show_progress="hidden", **PRIVATE)
    why.click(by_name(ui.why_in_turn, explained), [answered, model, question, context], list(explained.values()),
              api_name="ui_why", **EXPLAIN, **PRIVATE)
    return {"model": model, "question": question, "context": context, "message": outputs["message"], "quick": quick,
            "answer_outputs": {name: asked[name] for name in no_answer()}}
