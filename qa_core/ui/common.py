"""What every tab shares: wiring handlers to components by name, the model picker, and API-visibility defaults."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

import gradio as gr

from qa_core.fairness import Caller, TooManyRequests
from qa_core.hosting import offered
from qa_core.quick_fine_tune import QUICK_EXPECTED_S
from qa_core.service import QAService
from qa_core.settings import Settings
from qa_core.wording import capitalized

Outputs = dict[str, Any]
PRIVATE = {"api_visibility": "private"}  # UI events are not part of the documented API (README: The API)
QUICK_MINUTES = -(-QUICK_EXPECTED_S // 60)
HUB_HINT = "distilbert/distilbert-base-cased-distilled-squad"
# Questions, the Errors tab's row clicks (a question's logits), explanations and analyses of a run's records
# (in_turns) wait for their turn (fairness.FairWorker) in coroutines, which hold no thread: no limit in Gradio's
# queue, whose first come, first served order would otherwise come before the turns. The Ask and Errors tabs'
# explanations share one thread beside the model thread (QAService.attribute).
ANSWERS = {"concurrency_limit": None, "concurrency_id": "answer"}
EXPLAIN = {"concurrency_limit": None, "concurrency_id": "explain"}
ANALYSES = {"concurrency_limit": None, "concurrency_id": "analysis"}


def by_name(handler: Callable[..., Any], outputs: dict[str, Any]) -> Callable[..., Any]:
    """Wire a handler that returns {output name: value} to the components of those names; a coroutine function
    stays one."""
    if inspect.iscoroutinefunction(handler):
        @functools.wraps(handler)
        async def waiting(*args: Any) -> dict:
            return {outputs[name]: value for name, value in (await handler(*args)).items()}
        return waiting

    @functools.wraps(handler)  # Gradio reads the handler's signature (gr.SelectData) through __wrapped__
    def wired(*args: Any) -> dict:
        return {outputs[name]: value for name, value in handler(*args).items()}
    return wired


def in_turns(service: QAService, handler: Callable[..., Any]) -> Callable[..., Any]:
    """handler, work on a run's records, as a coroutine function that runs it on the model thread in the caller's
    turn (QAService.analyse_in_turn), taking the caller's gr.Request after the handler's arguments. A caller over
    its bound is refused with its one-line message (gr.Error), before the handler runs."""
    own = inspect.signature(handler)
    signature = own.replace(parameters=[*own.parameters.values(), inspect.Parameter(
        "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request | None)])

    @functools.wraps(handler)
    async def in_turn(*args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(*args, **kwargs).arguments
        caller = caller_of(arguments.pop("request", None))
        try:
            return await service.analyse_in_turn(caller, functools.partial(handler, **arguments))
        except TooManyRequests as err:
            raise gr.Error(service.for_caller(err), print_exception=False) from None

    # Gradio passes the request (and a gr.SelectData) by the hints of this signature, not of the handler's
    in_turn.__signature__ = signature  # type: ignore[attr-defined]
    in_turn.__annotations__ = {**typing.get_type_hints(handler), "request": gr.Request | None}
    return in_turn


def model_picker(service: QAService, label: str, example: str = "", elem_id: str | None = None) -> gr.Dropdown:
    """A model picker that takes a typed name too; example: a hub id to suggest where any may be typed."""
    choices = service.model_choices()
    return gr.Dropdown(choices, value=choices[0][1], label=label, info=model_info(service.settings, example),
                       allow_custom_value=True, interactive=True, elem_id=elem_id)


def model_info(settings: Settings, example: str = "") -> str:
    """What a model picker takes. A public server refuses every hub id but those it lists: it suggests none."""
    if settings.public:
        return capitalized(offered(settings))
    return f"The default model, a finished run, or a hub id (online){f' such as {example}' if example else ''}"


def caller_of(request: gr.Request | None) -> Caller:
    """Whose turn a request takes on the model thread: its address (behind a proxy, what uvicorn's trusted proxy
    headers make of it: FORWARDED_ALLOW_IPS) and its Gradio session."""
    if request is None:
        return Caller()
    client = getattr(request, "client", None)
    return Caller(str(getattr(client, "host", "") or ""), request.session_hash or "")


def session_of(request: gr.Request | None) -> str:
    """The caller's Gradio session (one per page load or gradio_client.Client): on a public server, the only one
    that may cancel the job it started."""
    return (request.session_hash or "") if request is not None else ""
