"""The Train form's and the web API's options: form or JSON values read as QAConfig's fields want them."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from typing import Any

from qa_core.config import HINTS, QAConfig, check_type, shown

# QAConfig fields the app never takes from a caller: the run folder is always a new one under the runs folder.
NOT_IN_FORM = ("model_name_or_path", "train_file", "validation_file", "output_dir", "resume", "overwrite_output_dir")


def form_fields() -> tuple[str, ...]:
    """The QAConfig fields a Train form (or an API caller) may set: every number and switch."""
    return tuple(f.name for f in dataclasses.fields(QAConfig) if f.name not in NOT_IN_FORM)


def coerce_option(name: str, value: Any, typed: bool = False) -> Any:
    """A form or JSON value as QAConfig's field `name` wants it; None = default, and so is the form's 0 for an
    optional count (a number box cannot be blank); typed: the API's JSON, whose 0 is refused as the library
    refuses it, since its callers can send null."""
    hint = HINTS[name]
    optional = type(None) in typing.get_args(hint)
    kind = next((t for t in (bool, int, float, str) if t is hint or t in typing.get_args(hint)), str)
    if value in (None, "", "auto") or (optional and kind is int and value == 0 and not typed):
        return None if optional else dataclasses.MISSING
    if kind is bool:
        return _switch(name, value)
    if kind is str:
        return str(value).strip()
    number = _number(name, value)
    if kind is int and number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value}")
    return int(number) if kind is int else number


def _switch(name: str, value: Any) -> bool:
    """A form or JSON switch; any other word is refused, not read as off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):  # a JSON 0.0 or 1, as a checkbox's number
        return bool(value)
    word = str(value).strip().lower()
    if word in ("1", "true", "on", "yes"):
        return True
    if word in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"{name} must be true or false, got {shown(value)}")


def _number(name: str, value: Any) -> float:
    """A form or JSON value as a finite float, refused naming the option (a JSON caller may send anything)."""
    if isinstance(value, bool):  # float(True) is 1.0: a JSON true is no step count
        raise ValueError(f"{name} must be a number, got {shown(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {shown(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {shown(value)}")
    return number


def config_options(options: Mapping[str, Any], typed: bool = False) -> dict[str, Any]:
    """Form or JSON options as QAConfig keyword arguments; unknown names refused, blanks left to the defaults.
    typed (the web API's JSON): each value not null must be of its field's type (check_type), as in the library;
    the form's inputs send text and floats, which are read as the field wants them."""
    if not isinstance(options, Mapping):
        raise ValueError(f"training options must be a mapping of QAConfig field to value, such as "
                         f"{{\"max_steps\": 100}}; got {type(options).__name__}")
    unknown = sorted(set(options) - set(form_fields()))
    if unknown:
        raise ValueError(f"unknown training options {unknown}; known: {', '.join(form_fields())}")
    if typed:
        for name, value in options.items():
            check_type(name, value)
    values = {name: coerce_option(name, value, typed) for name, value in options.items()}
    return {k: v for k, v in values.items() if v is not dataclasses.MISSING}
