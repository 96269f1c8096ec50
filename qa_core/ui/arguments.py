"""Check an HTTP caller's arguments against the types its handler's hints name, before the handler runs."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

# How an API caller is told what an argument must be, by the Python type a handler's hint names.
KINDS = {str: "text", dict: "a JSON object", list: "a JSON list", bool: "true or false", int: "a whole number",
         float: "a number"}


def _allowed(hint: Any) -> tuple[Any, ...]:
    """The plain classes a hint admits (str | None -> (str, NoneType); dict[str, Any] -> (dict,))."""
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    return tuple(typing.get_origin(h) or h for h in (typing.get_args(hint) if union else (hint,)))


def check_arguments(call: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> None:
    """Refuse, naming the argument, a call whose values are not of the types its handler's hints say: values from
    an HTTP client are anyone's, and a list where text belongs must not surface as an AttributeError."""
    try:
        bound = inspect.signature(call).bind(*args, **kwargs)
    except TypeError as err:
        raise ValueError(f"wrong arguments: {err}") from None
    hints = typing.get_type_hints(call)
    for name, value in bound.arguments.items():
        allowed = _allowed(hints.get(name, Any))
        if Any in allowed or isinstance(value, tuple(t for t in allowed if isinstance(t, type))):
            continue
        wanted = " or ".join(KINDS.get(t, getattr(t, "__name__", str(t))) for t in allowed if t is not type(None))
        raise ValueError(f"{name} must be {wanted}, got {type(value).__name__}")
