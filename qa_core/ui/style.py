"""The app's own CSS (given to launch): where Gradio's components read badly on a phone (390 px) or at 1400 px."""

from __future__ import annotations

BASE_CSS = """
/* A long selected label (a run's name and F1) ends in an ellipsis before the dropdown's arrow, not under it. */
input[role="combobox"] { padding-right: 2.25rem; text-overflow: ellipsis; }
"""


def app_css() -> str:
    return BASE_CSS
