"""What the web UI and its JSON API show, as plain values (no Gradio here)."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from qa_core.data import load_examples
from qa_core.error_analysis import V2_ERRORS, QuestionRecord, filter_records
from qa_core.plots import ATTRIBUTION_LEGEND
from qa_core.postprocess import Prediction, distinct_texts, prediction_json
from qa_core.run_files import read_run_info
from qa_core.run_list import evaluated_again
from qa_core.run_picker import evaluated_on_training_data
from qa_core.wording import count

if TYPE_CHECKING:  # types only: importing jobs would import training, attributions captum
    from qa_core.inference import AnswerResult
    from qa_core.attributions import Attribution
    from qa_core.settings import Settings
    from qa_core.jobs import JobSnapshot

# prediction, EM and F1 before the long gold column, so they stay in view on a narrow screen
TABLE_COLUMNS = ["id", "word", "question", "prediction", "EM", "F1", "gold"]
TABLE_WIDTHS = ["9%", "7%", "29%", "22%", "6%", "7%", "20%"]
LONG_ANSWER_CHARS = 60  # a longer answer is shown in smaller (still large) type
UNKNOWN_SHARE_WARNED = 0.2  # share of unknown context tokens above which the Ask tab warns
SORTS = ("F1, lowest first", "F1, highest first", "question word", "id")


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


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def eta_text(s: JobSnapshot) -> str:
    """The job's time left, saying what it counts: the job's estimate adds evaluations and checkpoints only once
    one evaluation has run (jobs.JobManager._wall_eta); after the last step only the final evaluation is left."""
    if s.total_steps and s.step >= s.total_steps:
        return "last step done: evaluating and saving"
    counts = "evaluations included" if s.metrics else "training steps only until an evaluation has run"
    return f"ETA {duration(s.eta_s)} ({counts})"


def job_text(s: JobSnapshot) -> str:
    if s.status == "idle":
        return "No training job has run since the server started."
    said = s.message.removeprefix(s.status).lstrip(" ;·")  # an end's message may start with the status itself
    lines = [f"Job {s.job_id}: {s.status}" + (f" · {said}" if said else ""), f"Run folder: {s.output_dir}",
             " · ".join([*steps_text(s), f"elapsed {duration(s.elapsed_s)}"])]
    if s.active and s.windows_per_s:
        lines.append(f"{s.windows_per_s:.1f} windows/s · {eta_text(s)}")
    if s.metrics:
        lines.append(f"Evaluation: EM {s.metrics['exact_match']:.1f} · F1 {s.metrics['f1']:.1f}")
    return "\n".join(lines)


def steps_text(s: JobSnapshot) -> list[str]:
    """Where the job is: its step and epoch, known from its first progress event on (a resumed job's starts at its
    checkpoint's step); until then "loading…" while it runs, nothing once it has ended."""
    if s.total_steps:
        return [f"Step {s.step}/{s.total_steps}", f"epoch {s.epoch:.2f}"]
    return ["loading…"] if s.active else []


def limits_note(settings: Settings) -> str:
    """What a public server's Train tab says of its caps (settings.TrainLimits), read before a start is refused."""
    limits, questions = settings.train_limits, settings.max_train_examples
    read = f", {count(questions, 'question')} read from each" if questions else ""
    epochs = f"{limits.epochs:g} epoch{'' if limits.epochs == 1 else 's'}"  # a float: 2.5 epochs
    return (f"This public server trains at most {count(limits.max_steps, 'step')} and {epochs} a job, in batches "
            f"of up to {count(limits.batch_size, 'window')} of up to {count(limits.max_seq_length, 'token')}, on the "
            f"bundled sample or a file you upload (up to {settings.max_upload_bytes // 1_000_000} MB{read}); one job "
            f"runs at a time, and only the page that started it can cancel it.")


def job_json(s: JobSnapshot, explain: Callable[[str], str]) -> dict[str, Any]:
    """The training job for the API: status, step, losses, metrics, its run's name; `explain` words the model and
    the message for the caller (on a public server without server paths)."""
    return {"job_id": s.job_id, "status": s.status, "run": Path(s.output_dir).name if s.output_dir else "",
            "model": explain(s.model), "step": s.step, "total_steps": s.total_steps, "epoch": s.epoch,
            "losses": [list(pair) for pair in s.losses], "windows_per_s": s.windows_per_s, "eta_s": s.eta_s,
            "metrics": s.metrics, "message": explain(s.message), "elapsed_s": round(s.elapsed_s, 1)}


def progress_html(s: JobSnapshot) -> str:
    """The job's progress bar. Drawn with two boxes, not <progress>: under Gradio's styles Chromium painted an
    idle <progress> (0%) as a full grey bar, so a server where nothing had run looked done."""
    percent = int(round(s.fraction * 100))  # numbers only: no user text reaches this HTML
    return (f'<div role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{percent}" '
            f'style="height:1.2em;border:1px solid var(--border-color-primary);border-radius:0.6em;'
            f'background:var(--background-fill-secondary);overflow:hidden">'
            f'<div style="width:{percent}%;height:100%;background:var(--color-accent)"></div></div> {percent}%')


def summary_text(records: Sequence[QuestionRecord]) -> str:
    em = sum(r.exact_match for r in records) / len(records)
    f1 = sum(r.f1 for r in records) / len(records)
    wrong = sum(r.exact_match < 100 for r in records)
    return f"{count(len(records), 'question')} · EM {em:.1f} · F1 {f1:.1f} · {wrong} not exactly right"


def evaluation_caveat(run: str) -> str:
    """A warning for runs evaluated on the data they trained on (the quick fine-tune): memorisation, not skill."""
    try:
        info = read_run_info(Path(run))
    except ValueError:
        return ""
    if evaluated_again(Path(run), info):  # its records are no longer those of its training's evaluation
        return ""
    if evaluated_on_training_data(info.config):
        return ("  ⚠ This run was evaluated on its own training data, so these figures show memorisation, "
                "not how it does on new questions. Train with separate evaluation data for honest figures.")
    return ""


def matched_note(shown: int, total: int) -> str:
    """Above the question table: how many questions its filters let through (an empty table said nothing)."""
    return "" if shown == total else f"{'None' if shown == 0 else f'{shown:,}'} of {total:,} questions match the filters"


def record_table(records: Sequence[QuestionRecord], only_wrong: bool = False, f1_range: tuple[float, float] = (0, 100),
                 word: str = "all", search: str = "", sort: str = SORTS[0], kind: str = V2_ERRORS[0]) -> pd.DataFrame:
    """The filtered, sorted question table of the Errors tab; the id column finds the record again."""
    chosen = filter_records(records, only_wrong, f1_range, word, search, kind)
    keys = {SORTS[0]: lambda r: r.f1, SORTS[1]: lambda r: -r.f1, SORTS[2]: lambda r: r.question_word}
    rows = [[r.example_id, r.question_word, r.question, shown_prediction(r), round(r.exact_match), round(r.f1, 1),
             shown_gold(r)]
            for r in sorted(chosen, key=keys.get(sort, lambda r: r.example_id))]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def shown_prediction(record: QuestionRecord) -> str:
    """The prediction, or '(no answer)' where a SQuAD 2.0 run abstained."""
    return "(no answer)" if record.abstained else record.prediction


def shown_gold(record: QuestionRecord) -> str:
    """The gold answers, or '(unanswerable)' for a SQuAD 2.0 question without one (not a blank cell)."""
    return " | ".join(record.gold_answers) or "(unanswerable)"


def is_squad_v2(records: Sequence[QuestionRecord]) -> bool:
    """Records of a SQuAD 2.0 evaluation (null odds stored), which a threshold can re-score."""
    return any(r.null_odds is not None for r in records)


def attribution_text(attribution: Attribution, budget_s: float) -> str:
    steps = f" with {count(attribution.steps, 'step')}" if attribution.steps else ""
    return (f"{attribution.method}{steps} in {attribution.seconds:.2f} s (budget {budget_s:.0f} s) · window "
            f"{attribution.window + 1} of {attribution.windows}; {ATTRIBUTION_LEGEND}")
