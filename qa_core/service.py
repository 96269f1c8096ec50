"""The web app's operations as plain calls under the server's policy, with JSON-shaped results for its API."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qa_core.calibration import Calibration, calibrate_prediction, fit_calibration, read_calibration
from qa_core.compare import Comparison, compare_runs
from qa_core.config import QAConfig
from qa_core.config_options import config_options
from qa_core.data import load_examples
from qa_core.data_sources import check_file_size
from qa_core.error_analysis import QuestionRecord, evaluated_threshold, find_record, record_json, run_records
from qa_core.fairness import LOCAL, Caller, FairWorker
from qa_core.hosting import (Settings, answer_limits, check_model, check_model_folder, check_request, check_run,
                             default_name, scrub)
from qa_core.inference import AnswerResult
from qa_core.jobs import JobManager, JobSnapshot
from qa_core.modeling import LoadedModel
from qa_core.quick_fine_tune import quick_config
from qa_core.run_files import QUICK_DATA, RECORDS_FILE, drop_if_unwritten, new_run_dir, read_run_info
from qa_core.run_list import list_runs
from qa_core.run_picker import model_choices, record_choices, run_choices
from qa_core.serving import ModelCache
from qa_core.train_policy import (capped, check_contexts, check_data, check_limits, check_start_data, check_start_model,
                                  check_training, resume_config)
from qa_core.views import answer_json, job_json
from qa_core.wording import count
from qa_core.web_runs import mark_web_run, prune_web_runs

if typing.TYPE_CHECKING:  # captum is imported only when an explanation is asked for
    from qa_core.attributions import Attribution

logger = logging.getLogger(__name__)

# Seconds one "Why this answer?" may take; less on a public server, where many visitors share the CPU.
EXPLAIN_BUDGET_S = {False: 5.0, True: 2.0}
API_LABELS = ("train_file", "validation_file")  # the data sources as /start_training names them


@functools.lru_cache(maxsize=8)
def _comparison(path_a: str, path_b: str, modified_a: int, modified_b: int) -> Comparison:
    return compare_runs(path_a, path_b)


class QAService:
    """Answers, runs and the training job, each call checked against the server's Settings."""

    def __init__(self, settings: Settings, models: ModelCache | None = None, jobs: JobManager | None = None) -> None:
        self.settings = settings
        bound = settings.max_caller_requests if settings.public else None
        self.models = models or ModelCache(fast=settings.fast_inference, load_wait_s=settings.model_wait_s,
                                           max_caller_questions=bound,
                                           limit_config=functools.partial(answer_limits, settings=settings))
        # Explanations compute on a thread of their own beside the model thread, one at a time, in turns between
        # callers as answers are: first come, first served, one caller's many would hold up everyone's.
        self.explainer = FairWorker("qa-explain", bound, "explanations")
        # Data files named by path are a local user's own; a public server reads only uploads, within the limits.
        limits = settings.train_limits
        self.jobs = jobs or JobManager(max_file_bytes=settings.max_upload_bytes if settings.public else None,
                                       max_windows=limits.windows if settings.public else None,
                                       max_eval_windows=limits.eval_windows if settings.public else None)

    def explain(self, err: BaseException | str, upload: str | None = None) -> str:
        """An error as one line for the caller; on a public server without server paths. upload: a file this
        server received, named by its own name: the temporary folder Gradio keeps it in means nothing to a user."""
        message = str(err)
        if upload:
            message = message.replace(str(Path(upload)), Path(upload).name)
        return scrub(message, self.settings)

    def preload_default(self) -> None:
        self.models.preload(check_model("", self.settings))

    def check_question(self, model: str | None, question: str | None, context: str | None) -> tuple[str, str, str]:
        """The model to load, the question and the context, refused at once over the limits."""
        question, context = question or "", context or ""
        check_request(question, context, self.settings)
        return check_model_folder(check_model(model, self.settings), self.settings.training_enabled), question, context

    async def answer_in_turn(self, model: str | None, question: str | None, context: str | None,
                             exact: bool = False, caller: Caller = LOCAL) -> tuple[AnswerResult, LoadedModel, float]:
        """The answer, the model that gave it, and the seconds answering took; refused at once over the limits.
        caller: whose turn on the model thread it takes (fairness.Caller). Waiting for the model and the turn holds
        no thread of the web server."""
        name, question, context = self.check_question(model, question, context)
        return await self.models.answer_in_turn(name, question, context, exact, self.settings.max_context_windows,
                                                caller)

    async def answer_json(self, model: str | None, question: str | None, context: str | None,
                          caller: Caller = LOCAL) -> dict[str, Any]:
        """Answer a question about a context; model: '' for the default, a run name, or an offered hub id."""
        result, loaded, seconds = await self.answer_in_turn(model, question, context, caller=caller)
        result, temperature, uncalibrated = self.calibrate(result, loaded)
        return answer_json(result, (model or "").strip() or default_name(self.settings), seconds, temperature,
                           uncalibrated)

    @staticmethod
    def calibrate(result: AnswerResult, loaded: LoadedModel) -> tuple[AnswerResult, float | None, str | None]:
        """The answer with probabilities at its run's fitted temperature (the Ask tab and /answer alike), that
        temperature (None: the run has no calibration), and why none was fitted where the run has a calibration
        without one (too few evaluation questions)."""
        prediction, temperature, uncalibrated = calibrate_prediction(result.prediction, loaded.source)
        return dataclasses.replace(result, prediction=prediction), temperature, uncalibrated

    def model_choices(self) -> list[tuple[str, str]]:
        """(label, value) for a model picker: the default, offered hub ids, finished runs, each run once and by
        name (also a run that is the default)."""
        default = default_name(self.settings)
        first, *found = model_choices(self.settings.runs_root, self.settings.default_model)
        runs = [(label, Path(path).name) for label, path in found]
        label = next((label for label, name in runs if name == default),
                     first[0] if default == self.settings.default_model else default)
        extra = [(m, m) for m in self.settings.allowed_models if m != default]
        return [(label, default), *extra, *(run for run in runs if run[1] != default)]

    def record_choices(self) -> list[tuple[str, str]]:
        """(label, run name) for the Errors tab's run picker."""
        return [(label, Path(path).name) for label, path in record_choices(self.settings.runs_root)]

    def run_path(self, run: str | None) -> str:
        return check_run(run, self.settings)

    def runs_json(self) -> list[dict[str, Any]]:
        """Every run and evaluation-only folder (status "evaluation"): name, status, metrics (EM/F1, and a SQuAD 2.0
        evaluation's HasAns, NoAns and best-threshold figures: run_list.FIGURES), whether it has evaluation records
        (what /run_records reads)."""
        return [{"run": Path(r.path).name, "status": r.status, "metrics": r.metrics, "has_records": r.has_records}
                for r in list_runs(self.settings.runs_root, evaluations=True)]

    def records(self, run: str | None) -> tuple[QuestionRecord, ...]:
        return run_records(check_run(run, self.settings))

    def records_json(self, run: str | None) -> list[dict[str, Any]]:
        """A run's per-question evaluation records (question, gold answers, prediction, EM, F1, ...); null odds
        null where the context has no span (record_json)."""
        return [record_json(r) for r in self.records(run)]

    def compare(self, run_a: str | None, run_b: str | None) -> Comparison:
        """Run B against run A on the same evaluation data (ValueError otherwise), computed once per pair of files."""
        paths = [Path(check_run(run, self.settings)) for run in (run_a, run_b)]
        for run in (run_a, run_b):
            self.records(run)  # the Errors tab's message for a run without records
        return _comparison(*(str(p) for p in paths), *((p / RECORDS_FILE).stat().st_mtime_ns for p in paths))

    def calibration(self, run: str | None) -> Calibration:
        """The run's stored temperature and reliability bins; fitted here for runs evaluated before they were stored."""
        return read_calibration(self.run_path(run)) or fit_calibration(self.records(run))

    def run_threshold(self, run: str | None) -> float:
        """The null-score threshold a SQuAD 2.0 run was evaluated at: its setting where that reproduces its records'
        abstentions, else one read off the records (an evaluation folder has no run.json to state it)."""
        try:
            stated = float(read_run_info(Path(self.run_path(run))).config.get("null_score_diff_threshold") or 0.0)
        except ValueError:  # a folder from `train.py evaluate` has no run.json
            stated = 0.0
        return evaluated_threshold(self.records(run), stated)

    def check_run_model(self, run: str | None) -> None:
        """A record's logits and attributions need the model that answered it: say plainly when the folder has
        none (check_model_folder), rather than report a model name that is neither a folder nor a hub id."""
        check_model_folder(self.run_path(run), self.settings.training_enabled)

    async def attribute_record(self, run: str | None, example_id: str, caller: Caller = LOCAL) -> Attribution:
        """Why the run answered one of its evaluated questions as it did: attributions of its predicted span (the
        best span where a SQuAD 2.0 run abstained), under the same checks and budget as an Ask explanation."""
        record = await asyncio.to_thread(self.record_to_explain, run, example_id)  # reads the run's records
        # the run by name, as the Ask tab names it: a public server refuses every path, its own runs' too
        return await self.attribute(run, record.question, record.context, record.span or record.best_span, caller)

    def record_to_explain(self, run: str | None, example_id: str) -> QuestionRecord:
        record = find_record(self.records(run), example_id)
        self.check_run_model(run)
        return record

    def check_upload(self, upload: str | None) -> str:
        """A line about an uploaded file, read at once within the size limit; a refused file is deleted."""
        if not upload:
            return ""
        path = Path(upload)
        try:
            check_file_size(path, self.settings.max_upload_bytes)
            loaded = load_examples(upload)
            check_contexts(loaded.examples[:self.settings.max_train_examples], path.name, self.settings)
        except (ValueError, OSError) as err:  # a DataError, or a context over the limit
            path.unlink(missing_ok=True)
            return f"Not usable as training data: {self.explain(err, upload)}"
        report = loaded.report
        return f"{path.name}: {count(report.examples, 'question')} ({report.unanswerable:,} unanswerable)"

    def train_config(self, model: str | None, train_file: str | None, validation_file: str | None,
                     options: Mapping[str, Any], upload: bool = False,
                     labels: tuple[str, str] = API_LABELS, typed: bool = False) -> QAConfig:
        """A checked config of a new run: the Train tab and the API make the same checks (train_policy), cheap
        ones first; the run folder is claimed only once all have passed, so a refused start leaves nothing.
        upload: train_file is a file this server received; labels: what messages call the two data sources; typed:
        options of the API's JSON, each of its field's type (config_options)."""
        check_training(self.settings)
        train_file = check_data(train_file, labels[0], self.settings, upload) or "sample"
        validation_file = check_data(validation_file, labels[1], self.settings) or train_file
        model = check_model(model, self.settings)
        config = capped(check_limits(QAConfig(model_name_or_path=model, train_file=train_file,
                                              validation_file=validation_file, **config_options(options, typed)),
                                     self.settings), self.settings)
        check_start_model(model)
        check_start_data(train_file, labels[0], self.settings)
        if validation_file != train_file:
            check_start_data(validation_file, labels[1], self.settings)
        return config.replace(output_dir=str(new_run_dir(self.settings.runs_root, model)))

    def quick_config(self) -> QAConfig:
        check_training(self.settings)
        model = check_model("", self.settings)  # a run named by QA_DEFAULT_MODEL: its folder
        return capped(quick_config(model, str(new_run_dir(self.settings.runs_root, model))), self.settings)

    def start(self, config: QAConfig, upload: str | None = None, owner: str = "") -> JobSnapshot:
        """Start the job; an uploaded data file is deleted when it ends; the claimed folder if it cannot start.
        owner: the caller's session, the only one a public server lets cancel the job."""
        self.make_room(Path(config.output_dir))
        mark_web_run(Path(config.output_dir))
        try:
            return self.jobs.start(config, on_end=functools.partial(Path(upload).unlink, missing_ok=True)
                                   if upload else None, owner=owner, **self.job_limits(config))
        except Exception:
            folder = Path(config.output_dir)
            for name in QUICK_DATA:  # the quick fine-tune's split of the sample, written with its config
                (folder / name).unlink(missing_ok=True)
            drop_if_unwritten(folder)
            raise

    def start_json(self, model: str | None = "", train_file: str | None = "sample", validation_file: str | None = "",
                   options: dict | None = None, owner: str = "") -> dict[str, Any]:
        """Start a training job; options: QAConfig fields such as max_steps or learning_rate."""
        self.start(self.train_config(model, train_file, validation_file, options or {}, typed=True), owner=owner)
        return self.job_json()

    def cancel(self, owner: str = "") -> JobSnapshot:
        """Ask the running job to stop after its current step; on a public server only its owner may."""
        return self.jobs.cancel(owner if self.settings.public else None)

    def cancel_json(self, owner: str = "") -> dict[str, Any]:
        self.cancel(owner)
        return self.job_json()

    def job_json(self) -> dict[str, Any]:
        """The training job: status, step, losses, metrics, its run's name."""
        return job_json(self.jobs.snapshot(), lambda text: scrub(text, self.settings))

    # The Ask tab's explanations and the Train tab's run list and Resume.

    async def attribute(self, model: str | None, question: str | None, context: str | None,
                        span: tuple[int, int] | None = None, caller: Caller = LOCAL) -> Attribution:
        """Why the model chose its answer: attributions from its fp32 copy, within the server's time budget.

        Computed on the explaining thread, not the model thread: askers never queue behind an explanation, and at
        most one extra thread computes beside the model thread. The budget counts from the explanation's turn;
        the wait for it holds no thread of the web server."""
        from qa_core.attributions import explain_answer

        if not (question or "").strip() or not (context or "").strip():
            raise ValueError("ask a question about a context first")
        name, question, context = self.check_question(model, question, context)
        with self.explainer.admitted(caller):
            # the run's settings within this server's limits, as answers use
            loaded, config = await self.models.get_in_turn(name, exact=True)
            explain = functools.partial(explain_answer, span=span, config=config,
                                        budget_s=EXPLAIN_BUDGET_S[self.settings.public],
                                        max_windows=self.settings.max_context_windows)
            return await asyncio.wrap_future(self.explainer.submit(caller, explain, loaded, question, context))

    def run_choices(self) -> list[tuple[str, str]]:
        """(label, run name) of every run, for the Train tab's history and Resume."""
        return [(label, Path(path).name) for label, path in run_choices(self.settings.runs_root)]

    def resume_config(self, run: str | None) -> QAConfig:
        """The config that continues a stopped run from its checkpoint (--resume), after checking it can."""
        check_training(self.settings)
        return resume_config(Path(self.run_path(run)), self.settings)

    def resume(self, run: str | None, owner: str = "") -> JobSnapshot:
        """Continue a cancelled or failed run where its checkpoint left off."""
        config = self.resume_config(run)
        self.make_room(Path(config.output_dir))
        return self.jobs.start(config, owner=owner, **self.job_limits(config))

    def make_room(self, run: Path) -> None:
        """Before a job trains `run`: the oldest runs of this server's web jobs beyond QA_MAX_RUNS removed (none
        while a job runs: the start is refused)."""
        if not self.jobs.snapshot().active:
            prune_web_runs(self.settings.runs_root, self.settings.max_runs, run)

    def job_limits(self, config: QAConfig) -> dict[str, Any]:
        """The step and epoch a public server's job stops at, whatever its options say (hosting.TrainLimits):
        epochs make steps and steps (max_steps) make epochs, each epoch ending in an evaluation and a checkpoint;
        and, for its end, why its run cannot be resumed (the Run picker's rule)."""
        limits, public = self.settings.train_limits, self.settings.public
        return {"step_limit": limits.max_steps if public else None, "epoch_limit": limits.epochs if public else None,
                "why_not_resumable": functools.partial(self.why_not_resumable, Path(config.output_dir).name)}

    def why_not_resumable(self, run: str) -> str:
        """Why Resume cannot continue a stopped run, in the caller's words; "" where it can."""
        try:
            self.resume_config(run)
        except ValueError as err:
            return self.explain(err)
        return ""
