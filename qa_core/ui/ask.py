"""The Ask tab: a question about a context, the answer highlighted, alternatives and per-token logits."""

from __future__ import annotations

from typing import Any

import gradio as gr

from qa_core import plots, views
from qa_core.inference import answer_note
from qa_core.service import QAService
from qa_core.ui.common import (ANSWER_CONCURRENCY, HUB_HINT, PRIVATE, QUICK_MINUTES, Outputs, by_name,
                               model_picker)

ANSWER_COLORS = {"answer": "#ffb347"}
NO_HEAD_NOTICE = (f"**This model has no fine-tuned question answering head yet, so its answers are close to "
                  f"random.** Fine-tune it first: the quick fine-tune trains it on the bundled sample in about "
                  f"{QUICK_MINUTES} minutes on a laptop CPU. Online, you can also type the hub id of a "
                  f"model fine-tuned on SQuAD in the model box, e.g. `{HUB_HINT}`.")


class AskHandlers:
    """The Ask tab's event handlers: each calls the service and returns its outputs by name."""

    def __init__(self, service: QAService) -> None:
        self.service = service

    def ask(self, model: str, question: str, context: str) -> Outputs:
        try:
            result, loaded, seconds = self.service.answer(model, question, context)
        except (ValueError, OSError, RuntimeError) as err:
            return {"answer": None, "score": "", "alternatives": views.alternatives_table(None), "plot": None,
                    "message": f"Cannot answer: {self.service.explain(err)}", "notice": gr.update(visible=False)}
        top = result.prediction.alternatives[0] if result.prediction.alternatives else None
        marks = {"answer": [result.prediction.span]} if result.prediction.span else {}
        timing = f"{result.windows} window(s) · {seconds * 1000:.0f} ms"
        score = (f"{answer_note(result.prediction)} · {timing}" if result.prediction.abstained or not top else
                 f"score {top.score:.2f} · probability {top.probability:.0%} · {timing}")
        return {"answer": views.highlight(result.context, marks), "score": score,
                "alternatives": views.alternatives_table(result),
                "plot": plots.logit_figure(result.logits, result.prediction.span), "message": "",
                "notice": gr.update(visible=not loaded.has_qa_head)}


def build_ask_tab(service: QAService) -> dict[str, Any]:
    ui = AskHandlers(service)
    with gr.Tab("Ask", id="ask"):
        model = model_picker(service, "Model", f"The default model, a finished run, or a hub id (online) such as "
                                               f"{HUB_HINT}")
        with gr.Row():
            with gr.Column(scale=3):
                context = gr.Textbox(label="Context", lines=8, max_lines=20, elem_id="ask-context",
                                     max_length=service.settings.max_context_chars)
                question = gr.Textbox(label="Question", lines=1, elem_id="ask-question",
                                      max_length=service.settings.max_question_chars)
                button = gr.Button("Answer", variant="primary", elem_id="ask-button")
            with gr.Column(scale=2):
                outputs = {"answer": gr.HighlightedText(label="Answer in the context", color_map=ANSWER_COLORS,
                                                        show_legend=False, elem_id="ask-answer"),
                           "score": gr.Textbox(label="Score", interactive=False, elem_id="ask-score"),
                           "message": gr.Textbox(label="Message", interactive=False, elem_id="ask-message")}
                with gr.Group(visible=False) as outputs["notice"]:
                    gr.Markdown(NO_HEAD_NOTICE)
                    quick = gr.Button(f"Quick fine-tune in the Train tab (about {QUICK_MINUTES} min)")
        outputs["alternatives"] = gr.Dataframe(views.alternatives_table(None), label="Top 5 answers",
                                               interactive=False)
        outputs["plot"] = gr.Plot(label="Start and end logits per token")
        rows, titles = views.sample_examples()
        gr.Examples(rows, [context, question], example_labels=titles, label="Examples (the bundled sample)",
                    api_name="ui_example", **PRIVATE)
    event = dict(fn=by_name(ui.ask, outputs), inputs=[model, question, context], outputs=list(outputs.values()),
                 concurrency_limit=ANSWER_CONCURRENCY, concurrency_id="answer", **PRIVATE)
    button.click(**event, api_name="ui_ask")
    question.submit(**event, api_name="ui_ask_submit")
    return {"model": model, "question": question, "context": context, "quick": quick}
