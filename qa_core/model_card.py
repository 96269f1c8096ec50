"""A run's model card (README.md with Hub metadata) and its upload to the Hugging Face Hub."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa_core.config import DEFAULT_MODEL
from qa_core.eval_settings import Evaluated, read_evaluated
from qa_core.metrics import SquadV2Metrics
from qa_core.run_files import (CALIBRATION_FILE, CARD_FILE, CHECKPOINT_DIR, EVAL_PREFIX, HISTORY_FILE, OLD_SUFFIX,
                               RECORDS_FILE, RUN_FILE, TENSORBOARD_DIR, TMP_SUFFIX, model_folder, read_eval_metrics)

if TYPE_CHECKING:
    from qa_core.run_files import RunInfo

# The hub id of the pretrained model the `embedded` package ships.
EMBEDDED_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Only the model folder goes up; in a run from before it had one (the model at the top of the run folder),
# resumable training state, per-question records, local bookkeeping and temporary files stay local.
UPLOAD_IGNORE = [f"{CHECKPOINT_DIR}*", f"{CHECKPOINT_DIR}*/**", f"{TENSORBOARD_DIR}/**", RUN_FILE, HISTORY_FILE,
                 f"{EVAL_PREFIX}*", CALIBRATION_FILE, f"*{TMP_SUFFIX}", f"*{OLD_SUFFIX}"]
# The hyperparameters a reader needs to reproduce a run, in this order.
CARD_HYPERPARAMETERS = ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
                        "num_train_epochs", "max_steps", "warmup_ratio", "weight_decay", "max_grad_norm",
                        "max_seq_length", "doc_stride", "max_query_length", "attention_dropout", "bf16", "seed",
                        "version_2_with_negative", "null_score_diff_threshold", "max_train_samples")


class HubError(ValueError):
    """Raised when a run cannot be pushed to the Hub (offline, not logged in, refused); one line for the user."""


@dataclass(frozen=True)
class EvalScore:
    """EM/F1 of the model on one evaluation set."""

    data: str  # the file or hub data set it was scored on
    exact_match: float
    f1: float
    questions: int | None = None
    squad_v2: SquadV2Metrics | None = None  # a SQuAD 2.0 evaluation: answerable and unanswerable questions
    threshold: float | None = None  # the null odds threshold a SQuAD 2.0 evaluation abstained above


@dataclass(frozen=True)
class CardFacts:
    """Everything a model card states about one run."""

    model_name: str
    base_model: str  # what was fine-tuned: a hub id or a local folder
    train_data: str
    hyperparameters: dict[str, Any]
    data_fingerprint: dict[str, str] = field(default_factory=dict)
    steps: int = 0
    train_seconds: float | None = None
    hardware: str = ""
    evaluations: tuple[EvalScore, ...] = ()
    license: str = "apache-2.0"
    # what load_model takes: the run folder as the command that wrote the card was given it (relative to where it
    # ran); None for a card going to the Hub, whose repository is model_name
    load_from: str | None = None


def base_model_name(name: str | None) -> str:
    """The name a model is known by outside this project: the embedded model's hub id, else the name given."""
    return EMBEDDED_BASE_MODEL if name in (None, "", DEFAULT_MODEL) else str(name)


def hub_id(name: str | None) -> str | None:
    """The Hub repository a model or data set name refers to, or None for local files, folders and 'sample'."""
    if not name:
        return None
    if name == DEFAULT_MODEL:
        return EMBEDDED_BASE_MODEL
    name = name.split(":", 1)[0]  # data sets are given as name:split
    if name.startswith((".", "/", "~")) or name.lower().endswith((".json", ".jsonl")) or name.count("/") != 1:
        return None
    return name


def data_name(data: str) -> str:
    """How the metadata names evaluation data: a hub data set as given, a local file by its file name (its path is
    of the machine that trained; the card's data fingerprint identifies it)."""
    return data if hub_id(data) else Path(data).name or data


def card_metadata(facts: CardFacts) -> str:
    """The YAML front matter the Hub reads: base model, data sets, task, library, license and scores."""
    from huggingface_hub import EvalResult, ModelCardData

    data_id = hub_id(facts.train_data)
    results = [EvalResult(task_type="question-answering", task_name="Extractive Question Answering",
                          dataset_type=hub_id(score.data) or data_name(score.data),
                          dataset_name=data_name(score.data),
                          dataset_split="validation", metric_type=metric, metric_name=name,
                          metric_value=round(value, 2))
               for score in facts.evaluations
               for metric, name, value in (("exact_match", "Exact Match", score.exact_match),
                                           ("f1", "F1", score.f1))]
    metadata = ModelCardData(base_model=hub_id(facts.base_model), datasets=[data_id] if data_id else None,
                             metrics=["exact_match", "f1"], pipeline_tag="question-answering",
                             library_name="transformers", license=facts.license, model_name=facts.model_name,
                             tags=["question-answering", "squad", "qa-lab"], eval_results=results or None)
    return metadata.to_yaml()


def render_model_card(facts: CardFacts) -> str:
    """README.md for a run folder or Hub repository: metadata, then how it was trained and how well it answers."""
    base = hub_id(facts.base_model) or facts.base_model
    lines = ["---", card_metadata(facts).strip(), "---", "", f"# {facts.model_name}", "",
             f"`{base}` fine-tuned for extractive question answering on SQuAD-format data with SQuAD QA Lab "
             "(`qa_core`): given a question and a passage, it points at the span of the passage that answers it.",
             "", "## Use", "", "```python", "from qa_core import answer_question, load_model", "",
             load_line(facts),
             'print(answer_question(loaded, "Who wrote it?", "It was written by Ada Lovelace.").prediction.text)',
             "```", "", "Plain transformers: `AutoModelForQuestionAnswering.from_pretrained(...)` and "
             "`AutoTokenizer.from_pretrained(...)` load it; the answer is the best span over its start/end logits.",
             "", *evaluation_section(facts.evaluations), *training_section(facts)]
    return "\n".join(lines) + "\n"


def load_line(facts: CardFacts) -> str:
    """The card's load_model call: the Hub repository, or the run folder as it was given; a bare folder name
    would load only from the folder the run sits in (else it is looked up on the Hub)."""
    if facts.load_from is None:
        return f"loaded = load_model({json.dumps(facts.model_name)})  # or a local copy of this folder"
    return (f"loaded = load_model({json.dumps(facts.load_from, ensure_ascii=False)})  # the run folder, from where "
            f"it was trained; or the path of this folder")


def evaluation_section(evaluations: tuple[EvalScore, ...]) -> list[str]:
    """A table of EM/F1 per evaluation set, as the official SQuAD v1.1 or v2.0 script computes them."""
    lines = ["## Evaluation", ""]
    if not evaluations:
        return [*lines, "Not evaluated.", ""]
    if v2 := [s for s in evaluations if s.squad_v2]:
        at = "the run's null_score_diff_threshold" if v2[0].threshold is None else \
            f"the null odds threshold {v2[0].threshold:g} (null_score_diff_threshold)"
        lines += [f"Official SQuAD v2.0 exact match and F1 (0-100, evaluate-v2.0.py) over all questions at {at}, "
                  "then over the answerable and the unanswerable ones (exact / F1 (questions)). Best F1: the F1 at "
                  "the null odds threshold that maximises it; answers with this model abstain above that "
                  "threshold.", "",
                  "| data | questions | exact match | F1 | answerable | unanswerable | best F1 |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
    else:
        lines += ["Official SQuAD v1.1 exact match and F1 (0-100).", "", "| data | questions | exact match | F1 |",
                  "| --- | --- | --- | --- |"]
    return [*lines, *(score_row(s) for s in evaluations), ""]


def score_row(score: EvalScore) -> str:
    row = [data_name(score.data), "-" if score.questions is None else str(score.questions), f"{score.exact_match:.2f}",
           f"{score.f1:.2f}"]
    if v2 := score.squad_v2:
        row += ["-" if part is None else f"{part[0]:.2f} / {part[1]:.2f} ({part[2]})" for part in (v2.has_ans,
                                                                                                      v2.no_ans)]
        row.append("-" if v2.best_f1 is None else f"{v2.best_f1[0]:.2f} at {v2.best_f1[1]:.4g}")
    return "| " + " | ".join(row) + " |"


def training_section(facts: CardFacts) -> list[str]:
    """Data with its fingerprint, steps, time, hardware and the hyperparameters that shaped the run."""
    seconds = f"{facts.train_seconds:.0f} s" if facts.train_seconds is not None else "not recorded"
    lines = ["## Training", "", f"- base model: `{facts.base_model}`", f"- training data: `{data_name(facts.train_data)}`"]
    lines += [f"- data fingerprint ({split}): `{value}`" for split, value in sorted(facts.data_fingerprint.items())]
    lines += [f"- optimizer steps: {facts.steps}", f"- training time: {seconds}",
              f"- hardware: {facts.hardware or 'not recorded'}", "", "| hyperparameter | value |", "| --- | --- |"]
    lines += [f"| {name} | {facts.hyperparameters[name]} |" for name in CARD_HYPERPARAMETERS
              if name in facts.hyperparameters]
    return [*lines, ""]


def card_worthy(name: str, value: Any, config: dict[str, Any]) -> bool:
    """A SQuAD 2.0 threshold only for a v2 run; a sample limit only when set, since a card naming the whole
    training file for a run on its first 100 questions overstates the data."""
    if name == "null_score_diff_threshold":
        return bool(config.get("version_2_with_negative"))
    return name != "max_train_samples" or value is not None


def facts_from_run(info: RunInfo, model_name: str, eval_metrics: dict[str, float] | None = None,
                   evaluated: Evaluated | None = None, load_from: str | None = None) -> CardFacts:
    """Card facts from a run's run.json contents and (optionally) its eval_metrics.json, from the evaluation
    `evaluated` describes (default: training's, on the run's validation_file). load_from: the local folder a reader
    loads it from; None when model_name is a Hub repository."""
    config = info.config
    metrics = eval_metrics or info.metrics
    evaluations = ()
    data = evaluated.data if evaluated else config.get("validation_file")
    exact = metrics.get("exact_match", metrics.get("exact"))  # SQuAD v1.1 and v2.0 names
    if data and exact is not None and "f1" in metrics:
        questions = metrics.get("total")
        # the figures say which evaluation gave them, not the run's config: a v1.1 run evaluated as SQuAD 2.0 too
        v2 = _v2_figures(metrics)
        threshold = evaluated.threshold if evaluated else config.get("null_score_diff_threshold")
        evaluations = (EvalScore(data, exact, metrics["f1"], int(questions) if questions is not None else None,
                                 v2, threshold if v2 else None),)
    base = info.base_model or base_model_name(config.get("model_name_or_path"))
    return CardFacts(model_name, base, config.get("train_file") or "",
                     {k: v for k, v in config.items() if k in CARD_HYPERPARAMETERS and card_worthy(k, v, config)},
                     card_fingerprints(info.data_fingerprint, evaluated),
                     info.step, info.train_seconds, info.hardware, evaluations, load_from=load_from)


def card_fingerprints(trained: dict[str, str], evaluated: Evaluated | None) -> dict[str, str]:
    """The run's data fingerprints, the validation one of the data the card's figures were scored on: another
    evaluation's, or none where it is unknown (training's would identify data the figures are not from)."""
    if evaluated is None:
        return dict(trained)
    kept = {split: value for split, value in trained.items() if split != "validation"}
    return kept | ({"validation": evaluated.fingerprint} if evaluated.fingerprint else {})


def _v2_figures(metrics: dict[str, float]) -> SquadV2Metrics | None:
    """evaluate-v2.0.py's figures, or None where the metrics lack them (the card then shows EM/F1 alone)."""
    try:
        return SquadV2Metrics.from_dict(metrics)
    except ValueError:
        return None


def check_can_push() -> None:
    """Fail fast, before training, when an upload could not happen: offline mode or no Hub token."""
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise HubError("--push_to_hub: HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it or drop "
                       "--push_to_hub (the run folder can be pushed later with qa_core.push_run)")
    if get_token() is None:
        raise HubError("--push_to_hub: no Hugging Face token; run `hf auth login` or set HF_TOKEN first")


def write_model_card(run_dir: str | Path, model_name: str | None = None, folder: Path | None = None,
                     info: RunInfo | None = None, evaluated: Evaluated | None = None,
                     eval_dir: Path | None = None) -> Path:
    """Write README.md into a run's model folder (or `folder`) from its run.json (or `info`) and the
    eval_metrics.json beside it (or in eval_dir: an evaluation not yet moved in), which `evaluated` (default: the
    eval_settings.json beside it) describes where not training's. model_name: the Hub repository it goes to; else
    the card is named after the run folder and loads the model from run_dir, as given."""
    from qa_core.run_files import read_run_info

    run_dir = Path(run_dir)  # a str, as load_model and push_run take, failed at `run_dir / ...`

    records = (eval_dir or run_dir) / RECORDS_FILE
    metrics = read_eval_metrics(eval_dir or run_dir)
    if metrics is not None and "total" not in metrics and records.exists():  # SQuAD v1.1: one record a question
        metrics["total"] = sum(1 for line in records.open(encoding="utf-8") if line.strip())
    info = info if info is not None else read_run_info(run_dir)
    evaluated = evaluated if evaluated is not None else read_evaluated(eval_dir or run_dir)  # None: training's
    name = model_name or run_dir.resolve().name
    facts = facts_from_run(info, name, metrics, evaluated=evaluated, load_from=None if model_name else str(run_dir))
    path = (folder or model_folder(run_dir)) / CARD_FILE
    path.write_text(render_model_card(facts), encoding="utf-8")
    return path


def push_run(run_dir: str | Path, hub_model_id: str | None = None, private: bool | None = None) -> str:
    """Upload a run's model folder (config, weights, tokenizer, card) to the Hub; returns the repo's URL.

    The card (README.md) is written once the repository exists, naming it with its owner (a hub_model_id without
    one is created under the user's name), from the run's run.json when it has one.
    """
    run_dir = Path(run_dir)
    check_can_push()
    from huggingface_hub import create_repo, upload_folder

    repo_id = hub_model_id or run_dir.resolve().name
    folder = model_folder(run_dir)
    with _upload_errors(run_dir, repo_id):
        repo = create_repo(repo_id, private=private, exist_ok=True)
    if (run_dir / RUN_FILE).is_file() or not (folder / CARD_FILE).exists():
        write_model_card(run_dir, repo.repo_id)  # a failed write is no failed upload: its own error
    with _upload_errors(run_dir, repo_id):
        upload_folder(repo_id=repo.repo_id, folder_path=folder, ignore_patterns=UPLOAD_IGNORE,
                      commit_message="Upload a SQuAD QA Lab run")
    return str(repo)


@contextlib.contextmanager
def _upload_errors(run_dir: Path, repo_id: str) -> Iterator[None]:
    """The Hub's refusals and connection errors (OSError, offline mode too) as one HubError line."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        yield
    except (HfHubHTTPError, OSError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HubError(f"--push_to_hub: could not upload {run_dir} to {repo_id}: {first_line}") from None
