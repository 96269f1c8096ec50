"""How an answer is shown (the Ask tab, /answer, and answers in the Errors tab): plain values, no Gradio."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from qa_core.data import load_examples
from qa_core.plots import ATTRIBUTION_LEGEND
from qa_core.postprocess import Prediction, distinct_texts, prediction_json
from qa_core.wording import count

if TYPE_CHECKING:  # types only: attributions imports captum
    from qa_core.attributions import Attribution
    from qa_core.inference import AnswerResult

LONG_ANSWER_CHARS = 60  # a longer answer is shown in smaller (still large) type
UNKNOWN_SHARE_WARNED = 0.2  # share of unknown context tokens above which the Ask tab warns


def highlight(context: str, marks: dict[str, list[tuple[int, int]]]) -> list[tuple[str, str | None]]:
    """Cut the context into (text, label) pieces; a piece inside spans of several labels gets 'a + b'."""
    cuts = sorted({0, len(context), *(p for spans in marks.values() for span in spans for p in span)})
    pieces: list[tuple[str, str | None]] = []
    for begin, end in zip(cuts, cuts[1:]):
        names = [n for n, spans in marks.items() if any(s <= begin and end <= e for s, e in spans)]
        label = " + ".join(names) or None
        if pieces and pieces[-1][1] == label:
            pieces[-1] = (pieces[-1][0] + context[begin:end], label)
        elif end > begin:
            pieces.append((context[begin:end], label))
    return pieces


def alternatives_table(result: AnswerResult | None) -> pd.DataFrame:
    """The Ask tab's top answers, each text once: the table shows no place, so one word found twice would read as
    one answer listed twice (the context marks the best occurrence)."""
    spans = distinct_texts(result.prediction.alternatives) if result else ()
    return pd.DataFrame({"#": range(1, len(spans) + 1), "answer": [s.text for s in spans],
                         "probability": [round(s.probability, 3) for s in spans]})


def answer_json(result: AnswerResult, model: str, seconds: float, temperature: float | None = None,
                uncalibrated: str | None = None) -> dict[str, Any]:
    """An answer for programs (postprocess.prediction_json, as `train.py predict` prints it), with every span
    searched as an alternative (the best first, abstaining or not: each has its place), the model, windows and
    milliseconds. Probabilities are temperature-scaled where the run has a calibration, as the Ask tab shows them;
    uncalibrated: why its run has none fitted."""
    prediction = result.prediction
    return {"model": model, **prediction_json(prediction, prediction.alternatives, temperature, uncalibrated),
            "windows": result.windows, "milliseconds": round(seconds * 1000, 2)}


def answer_headline(result: AnswerResult, temperature: float | None = None,
                    uncalibrated: str | None = None) -> tuple[str, str]:
    """The answer in a few words and the line under it: its probability (calibrated at temperature, or
    uncalibrated for the reason given), or why there is no answer (SQuAD 2.0)."""
    prediction = result.prediction
    if prediction.abstained or not prediction.alternatives:
        alternative = " The dashed span is the best one it passed over." if prediction.alternatives else ""
        return "No answer in this text", answer_note(prediction, result.null_threshold) + alternative
    calibrated = (f" (calibrated, temperature {temperature:.2f})" if temperature is not None else
                  f" (uncalibrated: {uncalibrated})" if uncalibrated else "")
    return prediction.text, f"probability {prediction.alternatives[0].probability:.0%}{calibrated}"


def answer_note(prediction: Prediction, threshold: float | None = None) -> str:
    """Why the model gave no answer, for the Ask tab's line under 'No answer in this text': its null odds against the
    threshold it answers at."""
    if not prediction.alternatives:
        return "The text has no span the model could choose."
    best = prediction.alternatives[0]
    # the odds, not "beats": below a negative threshold a run abstains on a null score under the span's
    return (f"The null score {prediction.null_score:.2f} less the best span's score ({quoted(best.text)}, "
            f"{best.score:.2f}): {odds_against(prediction.null_odds, threshold)}.")


def quoted(text: str) -> str:
    """A span's text quoted in a sentence, as a reader reads it: line breaks and runs of spaces as one space (a
    Python repr showed '\\n\\n' and escaped quotes)."""
    return "'" + " ".join(text.split()) + "'"


def explained_note(context: str, passed_over: tuple[int, int] | None) -> str:
    """What Why this answer? explains where a SQuAD 2.0 answer abstained: the best span, which the model did not give
    (passed_over: its characters in the context; None where the model answered). The Ask and Errors tabs say it
    alike."""
    if passed_over is None:
        return ""
    return (f"The model abstained on this question: these attributions explain the best span it passed over, "
            f"{quoted(context[passed_over[0]:passed_over[1]])}. ")


def odds_against(null_odds: float, threshold: float | None) -> str:
    """'null odds 3.10 above threshold -1.25' (or 'not above'), as evaluate-v2.0.py compares them: why a SQuAD 2.0
    answer abstained or not, in the same words in the Ask and Errors tabs. None: an abstention's threshold unknown."""
    if threshold is None:
        return f"null odds {null_odds:.2f} above the threshold"
    return f"null odds {null_odds:.2f} {'above' if null_odds > threshold else 'not above'} threshold {threshold:.2f}"


def score_line(prediction: Prediction, windows: int, seconds: float) -> str:
    """The Ask tab's Score box: the answer's score as predict and /answer give it, its probability, the time. No
    explanation: the line under the answer gives it."""
    timing = f"{count(windows, 'window')} · {seconds * 1000:.0f} ms"
    if prediction.span is None:
        null = f"score {prediction.null_score:.2f} (the null score) · " if prediction.null_score is not None else ""
        return f"{null}{timing}"
    best = prediction.alternatives[0]
    null = f" against a null score of {prediction.null_score:.2f}" if prediction.null_score is not None else ""
    return f"score {best.score:.2f}{null} · probability {best.probability:.0%} · {timing}"


def answer_html(context: str, span: tuple[int, int] | None, headline: str, detail: str,
                abstained: bool = False) -> str:
    """The Ask tab's answer block: the answer large, the line under it, and the context with the span marked.

    Every piece of text is escaped: a context or answer holding markup shows it as text. The page's script
    scrolls the context box to the <mark>. The answer and the context take their own text's direction (dir="auto":
    Arabic or Hebrew right to left).
    """
    body = html.escape(context)
    if span is not None:
        kind = "qa-passed-over" if abstained else "qa-span"
        body = (f'{html.escape(context[:span[0]])}<mark class="{kind}">{html.escape(context[span[0]:span[1]])}'
                f'</mark>{html.escape(context[span[1]:])}')
    state = " qa-abstained" if abstained else " qa-long-answer" if len(headline) > LONG_ANSWER_CHARS else ""
    return (f'<div class="qa-answer{state}"><div class="qa-headline" dir="auto">{html.escape(headline)}</div>'
            f'<div class="qa-detail">{html.escape(detail)}</div>'
            f'<div class="qa-context" dir="auto" tabindex="0">{body}</div></div>')


def unknown_warning(tokens: Sequence[str], unknown: str | None, texts: Sequence[str] = ()) -> str:
    """A warning when many context tokens are unknown to the model's vocabulary (e.g. Chinese for an English one).
    texts: each token's text in the context, which says what the unknown pieces are."""
    if not tokens or unknown is None:
        return ""
    share = sum(t == unknown for t in tokens) / len(tokens)
    if share <= UNKNOWN_SHARE_WARNED:
        return ""
    much = "most of this text" if share > 0.5 else "part of this text"  # a warning from 20% up: not always most
    return (f"⚠ {share:.0%} of the context's tokens are unknown to this model's vocabulary ({unknown}): it cannot "
            f"read {much}, so its answer may mean little. "
            f"{unknown_advice([text for token, text in zip(tokens, texts) if token == unknown])}")


def unknown_advice(pieces: Sequence[str]) -> str:
    """What to do about unknown pieces: unknown letters mean a language (or script) the vocabulary lacks; unknown
    emoji and symbols do not (an English vocabulary reads the English words around them)."""
    letters = sum(any(c.isalpha() for c in piece) for piece in pieces)
    if pieces and 2 * letters < len(pieces):
        return "They are mostly emoji or symbols, not words: taking them out of the context may give a better answer."
    return "Use a model trained for this language."


def sample_examples() -> tuple[list[list[str]], list[str]]:
    """The first question of each bundled passage, as [context, question] rows and their titles."""
    firsts: dict[str, Any] = {}
    for example in load_examples("sample").examples:
        firsts.setdefault(example.context, example)
    return [[e.context, e.question] for e in firsts.values()], [e.title.replace("_", " ") for e in firsts.values()]


def attribution_text(attribution: Attribution, budget_s: float) -> str:
    steps = f" with {count(attribution.steps, 'step')}" if attribution.steps else ""
    return (f"{attribution.method}{steps} in {attribution.seconds:.2f} s (budget {budget_s:.0f} s) · window "
            f"{attribution.window + 1} of {attribution.windows}; {ATTRIBUTION_LEGEND}")
