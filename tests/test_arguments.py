"""An HTTP caller's arguments are checked against the handler's hints (qa_core.ui.arguments)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from qa_core.ui.arguments import check_arguments


def test_arguments_are_checked_against_the_handlers_hints():
    def handler(model: str | None, question: str, options: dict[str, Any] | None = None, anything: Any = 0) -> None:
        pass

    check_arguments(handler, (None, "q"), {"options": {"a": 1}, "anything": [1]})
    for args, expected in (((5, "q"), "model must be text, got int"), (("", ["q"]), "question must be text, got list"),
                           (("", "q", "a=1"), "options must be a JSON object, got str"),
                           (("", None), "question must be text, got NoneType"), (("",), "wrong arguments")):
        with pytest.raises(ValueError, match=re.escape(expected)):
            check_arguments(handler, args, {})
