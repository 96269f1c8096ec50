"""The web app's operations as plain calls under the server's policy, with JSON-shaped results for its API."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qa_core import answer_views, errors_views, run_picker
from qa_core.calibration import Calibration, calibrate_prediction, current_calibration, read_calibration
from qa_core.compare import Comparison, compare_runs
from qa_core.error_analysis import QuestionRecord, evaluated_threshold, find_record, record_json, run_records
from qa_core.eval_settings import read_evaluated
from qa_core.fairness import LOCAL, Caller, CallerBound, FairWorker
from qa_core.hosting import (answer_limits, check_model, check_model_folder, check_name, check_request, check_run,
                             default_name)
from qa_core.inference import AnswerResult, TokenLogits
from qa_core.job_service import JobService
from qa_core.jobs import JobManager
from qa_core.modeling import LoadedModel
from qa_core.run_files import (RECORDS_FILE, evaluated_model, has_model, is_evaluation_folder, namesake_beside,
                               read_run_info)
from qa_core.run_list import list_runs
from qa_core.run_settings import config_for_model, run_config
from qa_core.serving import ModelCache
from qa_core.settings import Settings

if typing.TYPE_CHECKING:  # captum is imported only when an explanation is asked for
    from qa_core.attributions import Attribution

logger = logging.getLogger(__name__)

# Seconds one "Why this answer?" may take on a public server, where many visitors share the CPU (elsewhere the
# library's own default, attributions.DEFAULT_BUDGET_S).
PUBLIC_EXPLAIN_BUDGET_S = 2.0


def threshold_asked_at(model: str) -> float | None:
    """The threshold the Ask tab answers a SQuAD 2.0 model folder at (as serving reads run_config); None where it
    is no model folder (a hub id, an evaluation folder), or its model never abstains."""
    asked = run_config(model) if has_model(model) else None
    return asked.null_score_diff_threshold if asked and asked.version_2_with_negative else None


@functools.lru_cache(maxsize=8)
def _comparison(path_a: str, path_b: str, modified_a: int, modified_b: int) -> Comparison:
    return compare_runs(path_a, path_b)


class QAService(JobService):
    """Answers, runs and the training job (JobService), each call checked against the server's Settings."""

    def __init__(self, settings: Settings, models: ModelCache | None = None, jobs: JobManager | None = None) -> None:
        super().__init__(settings, jobs)
        bound = settings.max_caller_requests if settings.public else None
        self.models = models or ModelCache(fast=settings.fast_inference, load_wait_s=settings.model_wait_s,
                                           max_caller_questions=bound,
                                           limit_config=functools.partial(answer_limits, settings=settings))
        # Explanations compute on a thread of their own beside the model thread, one at a time, in turns between
        # callers as answers are: first come, first served, one caller's many would hold up everyone's.
        self.explainer = FairWorker("qa-explain", bound, "explanations")
        # A run's records made into tables, figures and JSON: Python work that holds the GIL, which the model thread
        # takes back after each of its many torch calls. Run beside it, as many at once as visitors sent, or even
        # one at a time on a thread of its own, it slowed every answer; on the model thread, it takes turns instead.
        self.analyses = CallerBound("qa-analysis", bound, "analyses of runs")

    async def analyse_in_turn(self, caller: Caller, call: Callable[..., Any], *args: Any) -> Any:
        """call(*args), work on a run's records (the Errors tab's views, /run_records), on the model thread in the
        caller's turn with the answers; refused at once with fairness.TooManyRequests beyond the caller's bound of
        these (apart from its questions). Waiting holds no thread of the web server."""
        return await self.models.run_in_turn(caller, self.analyses, call, *args)

    def preload_default(self) -> None:
        self.models.preload(check_model("", self.settings))

    def check_question(self, model: str | None, question: str | None, context: str | None) -> tuple[str, str, str]:
        """The model to load, the question and the context, refused at once over the limits."""
        question, context = question or "", context or ""
        check_request(question, context, self.settings)
        return check_model_folder(check_model(model, self.settings), self.settings.training_enabled), question, context

    async def answer_in_turn(self, model: str | None, question: str | None, context: str | None,
                             exact: bool = False, caller: Caller = LOCAL,
                             settings: Mapping[str, int] | None = None) -> tuple[AnswerResult, LoadedModel, float]:
        """The answer, the model that gave it, and the seconds answering took; refused at once over the limits.
        caller: whose turn on the model thread it takes (fairness.Caller). Waiting for the model and the turn holds
        no thread of the web server. settings: windows and span search instead of the model's run's (an
        evaluation's: evaluation_settings), within this server's caps as those are."""
        name, question, context = self.check_question(model, question, context)
        return await self.models.answer_in_turn(name, question, context, exact, self.settings.max_context_windows,
                                                caller, settings)

    async def answer_json(self, model: str | None, question: str | None, context: str | None,
                          caller: Caller = LOCAL) -> dict[str, Any]:
        """Answer a question about a context; model: '' for the default, a run name, or an offered hub id."""
        result, loaded, seconds = await self.answer_in_turn(model, question, context, caller=caller)
        result, temperature, uncalibrated = self.calibrate(result, loaded)
        return answer_views.answer_json(result, check_name(model, "model") or default_name(self.settings), seconds,
                                        temperature, uncalibrated)

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
        first, *found = run_picker.model_choices(self.settings.runs_root, self.settings.default_model)
        runs = [(label, Path(path).name) for label, path in found]
        label = next((label for label, name in runs if name == default),
                     first[0] if default == self.settings.default_model else default)
        extra = [(m, m) for m in self.settings.allowed_models if m != default]
        return [(label, default), *extra, *(run for run in runs if run[1] != default)]

    def record_choices(self) -> list[tuple[str, str]]:
        """(label, run name) for the Errors tab's run picker."""
        return [(label, Path(path).name) for label, path in run_picker.record_choices(self.settings.runs_root)]

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
        """The run's stored temperature and reliability bins (calibration.json); fitted here on its records where it
        has none (evaluated before they were stored) or one fitted with a SQuAD 2.0 run's abstentions mixed in."""
        return current_calibration(read_calibration(self.checked_run(run)), self.records(run))

    def run_threshold(self, run: str | None) -> float:
        """The null-score threshold a SQuAD 2.0 run was evaluated at: its evaluation's (eval_settings.json), else its
        run's setting, where that reproduces its records' abstentions; else one read off the records (a folder from
        before the evaluation's was kept, or a run evaluated again, need not have used its run's)."""
        path = Path(self.checked_run(run))
        used = read_evaluated(path)
        if used is not None and used.threshold is not None:
            stated = used.threshold
        else:
            try:
                stated = float(read_run_info(path).config.get("null_score_diff_threshold") or 0.0)
            except ValueError:  # a folder from `train.py evaluate` has no run.json
                stated = 0.0
        return evaluated_threshold(self.records(run), stated)

    def threshold_slider(self, run: str | None,
                         records: Sequence[QuestionRecord] | None = None) -> errors_views.ThresholdSlider:
        """The Errors tab's threshold slider of a SQuAD 2.0 run: evaluated at the run's threshold; the best-F1 one
        of its metrics; and, where it has its model, the one the Ask tab answers at (asked_threshold)."""
        best = config_for_model(self.checked_run(run))  # its eval_metrics.json: v2 where it has best_f1_thresh
        return errors_views.threshold_slider(records or self.records(run), self.run_threshold(run),
                                             best.null_score_diff_threshold if best.version_2_with_negative else None,
                                             self.asked_threshold(run))

    def asked_threshold(self, run: str | None) -> float | None:
        """The threshold the Ask tab answers a SQuAD 2.0 run's records' model at (record_model); None where the
        folder names no model this server offers, or its model never abstains."""
        try:
            return self.model_threshold(self.record_model(run))
        except ValueError:
            return None

    def model_threshold(self, model: str) -> float | None:
        """The threshold the Ask tab answers a model of its Model list at (threshold_asked_at)."""
        return threshold_asked_at(check_model(model, self.settings))

    def sent_model(self, run: str | None) -> tuple[str | None, str]:
        """The Ask tab's model for a question sent from a run (record_model), or None and why the Ask tab keeps
        its model, rather than take a name that cannot answer."""
        try:
            return self.record_model(run), ""
        except ValueError as err:
            return None, f"Model not changed: {self.for_caller(err)}"

    def record_model(self, run: str | None) -> str:
        """The model that answered a run's records, by the Ask tab's name: the run's own, where it has one; for an
        evaluation folder, the model it evaluated where this server offers it, or else the run of that name beside
        the folder (run_files.namesake_beside). Else a ValueError saying why (a stopped run has none)."""
        try:
            self.check_run_model(run)
            return run or ""
        except ValueError as err:
            refused = err
        path = Path(self.checked_run(run))
        evaluated = evaluated_model(path) if is_evaluation_folder(path) else None
        if evaluated is None:
            raise refused
        offered = {value: check_model(value, self.settings) for _, value in self.model_choices()}
        chosen = run_picker.offered_choice(evaluated, offered)
        if chosen is None and (beside := namesake_beside(path, evaluated)) is not None:  # copied or moved since
            chosen = run_picker.offered_choice(str(beside), offered)
        if chosen is None:
            raise ValueError(f"{path.name} evaluated {evaluated}, which is not offered in the Model list")
        return chosen

    def evaluation_settings(self, run: str | None) -> dict[str, int]:
        """The windows and span search a run's records were scored with (eval_settings.json), which a run evaluated
        again, or an evaluation folder, need not share with the model's run; {} for a folder from before they were
        kept: its model's run's own are used, as before."""
        used = read_evaluated(Path(self.checked_run(run)))
        return used.window_settings if used is not None else {}

    async def record_logits_in_turn(self, run: str | None, record: QuestionRecord,
                                    caller: Caller = LOCAL) -> TokenLogits:
        """A record's question run again through the model that answered it (record_model), cut into the windows
        its evaluation cut (evaluation_settings): the logits the record was scored from."""
        model, settings = await asyncio.to_thread(self.record_answering, run)  # reads the run's files
        result, *_ = await self.answer_in_turn(model, record.question, record.context, exact=True, caller=caller,
                                               settings=settings)
        return await asyncio.to_thread(getattr, result, "logits")  # merged off the event loop, as plots are drawn

    def record_answering(self, run: str | None) -> tuple[str, dict[str, int]]:
        """The model that answered a run's records and the settings it answered them with."""
        return self.record_model(run), self.evaluation_settings(run)

    def explain_budget_s(self) -> float:
        """Seconds one "Why this answer?" may take on this server."""
        from qa_core.attributions import DEFAULT_BUDGET_S  # captum: imported once an explanation is asked for

        return PUBLIC_EXPLAIN_BUDGET_S if self.settings.public else DEFAULT_BUDGET_S

    def check_run_model(self, run: str | None) -> None:
        """A record's logits and attributions need the model that answered it: say plainly when the folder has
        none (check_model_folder), rather than report a model name that is neither a folder nor a hub id."""
        check_model_folder(self.checked_run(run), self.settings.training_enabled)

    async def attribute_record(self, run: str | None, example_id: str, caller: Caller = LOCAL) -> Attribution:
        """Why the run answered one of its evaluated questions as it did: attributions of its predicted span (the
        best span where a SQuAD 2.0 run abstained), under the same checks and budget as an Ask explanation."""
        record, (model, settings) = await asyncio.to_thread(self.record_to_explain, run, example_id)  # reads files
        # the model by name, as the Ask tab names it: a public server refuses every path, its own runs' too
        return await self.attribute(model, record.question, record.context, record.span or record.best_span, caller,
                                    settings)

    def record_to_explain(self, run: str | None, example_id: str) -> tuple[QuestionRecord, tuple[str, dict[str, int]]]:
        """One of the run's records, the model that answered it and its settings (record_answering)."""
        return find_record(self.records(run), example_id), self.record_answering(run)

    async def attribute(self, model: str | None, question: str | None, context: str | None,
                        span: tuple[int, int] | None = None, caller: Caller = LOCAL,
                        settings: Mapping[str, int] | None = None) -> Attribution:
        """Why the model chose its answer: attributions from its fp32 copy, within the server's time budget;
        settings: as answer_in_turn takes them.

        Computed on the explaining thread, not the model thread: askers never queue behind an explanation, and at
        most one extra thread computes beside the model thread. The budget counts from the explanation's turn;
        the wait for it holds no thread of the web server."""
        from qa_core.attributions import explain_answer

        if not (question or "").strip() or not (context or "").strip():
            raise ValueError("ask a question about a context first")
        name, question, context = self.check_question(model, question, context)
        with self.explainer.admitted(caller):
            # the run's settings (or the evaluation's) within this server's limits, as answers use
            loaded, config = await self.models.get_in_turn(name, True, settings)
            explain = functools.partial(explain_answer, span=span, config=config,
                                        budget_s=self.explain_budget_s(),
                                        max_windows=self.settings.max_context_windows)
            return await asyncio.wrap_future(self.explainer.submit(caller, explain, loaded, question, context))
