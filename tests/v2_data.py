"""A SQuAD 2.0 paragraph with answerable and unanswerable questions, predictions and null odds that reach every case
of the official v2.0 scoring, and that script run on them: for the v2 metric, scoring, record and evaluation tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from qa_core.data import Answer, Example
from qa_core.postprocess import Prediction, Span

OFFICIAL = Path(__file__).parent / "official_squad_v2.py"

# Zero-width spaces: no token, so no span to weigh the null score against; such a question's null odds are stored
# as the largest float (it abstains at any threshold).
BLANK = "\u200b\u200b\u200b\u200b"
CONTEXT = "The ferry to Kessick leaves at noon, and the ferryman, Odo Brant, rows it alone across the firth."
# (id, question, gold answers: [] when unanswerable)
QUESTIONS = [
    ("a1", "When does the ferry leave?", ["noon", "at noon"]),
    ("a2", "Who rows the ferry?", ["Odo Brant", "the ferryman, Odo Brant"]),
    ("a3", "Where does the ferry go?", ["Kessick"]),
    ("a4", "What is crossed?", ["the firth"]),
    ("a5", "What article?", ["the"]),  # normalizes to nothing: v2.0 scores it against ""
    ("n1", "Who built the ferry?", []),
    ("n2", "When does it come back?", []),
    ("n3", "How much is a ticket?", []),
]
# Several golds, partial answers, empty answers (abstained) on both kinds of question, answers on unanswerable ones
PREDICTIONS = {"a1": "at noon", "a2": "Brant", "a3": "", "a4": "alone across the firth", "a5": "", "n1": "Odo Brant",
               "n2": "", "n3": "the"}
# Ties (0.5 twice, -1 twice) and negative odds, as null odds (score differences) are
NULL_ODDS = {"a1": -3.0, "a2": 0.5, "a3": 2.0, "a4": -1.0, "a5": 0.5, "n1": -1.0, "n2": 4.0, "n3": 1.5}


def write_v2(path: Path, blank: bool = False) -> Path:
    """The paragraph as SQuAD 2.0 JSON; blank: with a second paragraph, of BLANK, asked one unanswerable question."""
    qas = [{"id": qid, "question": q, "is_impossible": not golds,
            "answers": [{"text": g, "answer_start": CONTEXT.find(g)} for g in golds]} for qid, q, golds in QUESTIONS]
    paragraphs = [{"context": CONTEXT, "qas": qas}]
    if blank:
        paragraphs.append({"context": BLANK, "qas": [{"id": "blank", "question": "Who is it?", "is_impossible": True,
                                                       "answers": []}]})
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": paragraphs}]}),
                    encoding="utf-8")
    return path


def official(data: Path, predictions: dict, na_probs: dict | None, threshold: float | None, tmp: Path) -> dict:
    (tmp / "pred.json").write_text(json.dumps(predictions))
    args = [sys.executable, str(OFFICIAL), str(data), str(tmp / "pred.json")]
    if na_probs is not None:
        (tmp / "na.json").write_text(json.dumps(na_probs))
        args += ["--na-prob-file", str(tmp / "na.json")]
    if threshold is not None:
        args += ["--na-prob-thresh", str(threshold)]
    return json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)


GOLDS = {qid: golds for qid, _, golds in QUESTIONS}


def predictions_from_odds() -> dict[str, Prediction]:
    """Predictions whose best span is the PREDICTIONS text (or a wrong one) with NULL_ODDS, cut at threshold 0."""
    out = {}
    for qid, _, _ in QUESTIONS:
        text = PREDICTIONS[qid] or "firth"
        start = CONTEXT.find(text)
        spans = (Span(start, start + len(text), text, 1.0, 1.0),)
        null = 1.0 + NULL_ODDS[qid]
        out[qid] = (Prediction(qid, "", None, null, spans, null) if NULL_ODDS[qid] > 0 else
                    Prediction(qid, text, (start, start + len(text)), 1.0, spans, null))
    return out


def examples() -> list[Example]:
    return [Example(qid, q, CONTEXT, tuple(Answer(g, CONTEXT.find(g)) for g in golds)) for qid, q, golds in QUESTIONS]
