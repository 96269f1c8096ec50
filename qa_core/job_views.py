"""How the training job is shown (the Train tab and its API): plain values, no Gradio."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa_core.wording import count

if TYPE_CHECKING:  # types only: importing jobs would import training
    from qa_core.jobs import JobSnapshot
    from qa_core.settings import Settings




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


def job_json(s: JobSnapshot, for_caller: Callable[[str], str]) -> dict[str, Any]:
    """The training job for the API: status, step, losses, metrics, its run's name; `for_caller` words the model and
    the message for the caller (on a public server without server paths)."""
    return {"job_id": s.job_id, "status": s.status, "run": Path(s.output_dir).name if s.output_dir else "",
            "model": for_caller(s.model), "step": s.step, "total_steps": s.total_steps, "epoch": s.epoch,
            "losses": [list(pair) for pair in s.losses], "windows_per_s": s.windows_per_s, "eta_s": s.eta_s,
            "metrics": s.metrics, "message": for_caller(s.message), "elapsed_s": round(s.elapsed_s, 1)}


def progress_html(s: JobSnapshot) -> str:
    """The job's progress bar. Drawn with two boxes, not <progress>: under Gradio's styles Chromium painted an
    idle <progress> (0%) as a full grey bar, so a server where nothing had run looked done."""
    percent = int(round(s.fraction * 100))  # numbers only: no user text reaches this HTML
    return (f'<div role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{percent}" '
            f'style="height:1.2em;border:1px solid var(--border-color-primary);border-radius:0.6em;'
            f'background:var(--background-fill-secondary);overflow:hidden">'
            f'<div style="width:{percent}%;height:100%;background:var(--color-accent)"></div></div> {percent}%')
