"""The checks a new training job passes (switch, data, model, limits) before the Train tab or the API announce it."""

from __future__ import annotations

from pathlib import Path

from qa_core.config import QAConfig, context_room
from qa_core.data import Example, load_examples
from qa_core.data_sources import check_file_size
from qa_core.modeling import resolve_model
from qa_core.run_files import find_checkpoint, has_model, read_run_info
from qa_core.settings import LIMIT_VARIABLES, LIMITED_OPTIONS, PER_JOB_OPTIONS, Settings, TrainLimits

DATA_SUFFIXES = (".json", ".jsonl", ".gz")
MOST_SPECIAL_TOKENS = 4  # in a question + context pair: RoBERTa's <s> q </s></s> c </s> (BERT's take 3)
SWITCHED_OFF = "training is switched off on this server"


def check_training(settings: Settings) -> None:
    """Checked before anything else, so a server that does not train says so whatever else is wrong."""
    if not settings.training_enabled:
        raise ValueError(SWITCHED_OFF)


def check_data(source: str | None, what: str, settings: Settings, upload: bool = False) -> str:
    """A training or evaluation data source a caller may name: anything locally; on a public server only the
    bundled sample or a file this server received as an upload."""
    source = (source or "").strip()
    if settings.public and not upload and source not in ("sample", ""):
        raise ValueError(f"{what}: this server trains only on the bundled sample ('sample') or a file uploaded in "
                         f"the Train tab")
    return source


def check_start_data(source: str, what: str, settings: Settings) -> str:
    """A data file named for a new job, refused when it is missing or not SQuAD data (a hub name is left to the
    job): a job that cannot read its data is never announced as started."""
    path = Path(source)
    if source in ("", "sample") or not (path.suffix.lower() in DATA_SUFFIXES or path.exists()):
        return source
    if not path.exists():
        raise ValueError(f"{what}: no such file {source}")
    check_file_size(path, settings.max_upload_bytes if settings.public else None)
    check_contexts(load_examples(source, limit=settings.max_train_examples).examples, what, settings)
    return source


def check_contexts(examples: tuple[Example, ...], what: str, settings: Settings) -> None:
    """A public server trains on contexts no longer than it answers: every question's context is cut into
    windows, so one long context shared by many questions would multiply a job's work and memory past every cap."""
    if not settings.public or not examples:
        return
    longest = max(examples, key=lambda e: len(e.context))
    if len(longest.context) > settings.max_context_chars:
        raise ValueError(f"{what}: question {longest.example_id!r} has a context of {len(longest.context):,} "
                         f"characters; this server trains on contexts of up to {settings.max_context_chars:,} "
                         f"(QA_MAX_CONTEXT_CHARS)")


def check_start_model(name: str) -> str:
    """A model to start from, refused when it is no model folder, no cached hub id, or (offline) no hub id this
    machine can fetch: the job would otherwise fail a moment after being announced."""
    resolve_model(name)
    return name


def capped(config: QAConfig, settings: Settings) -> QAConfig:
    """The config with at most max_train_examples questions read from each data source."""
    cap = settings.max_train_examples
    if cap is None:
        return config
    return config.replace(max_train_samples=min(config.max_train_samples or cap, cap),
                          max_eval_samples=min(config.max_eval_samples or cap, cap))


def check_limits(config: QAConfig, settings: Settings) -> QAConfig:
    """A public server's caps on the options that set a job's time and memory (settings.TrainLimits), each
    refused naming the option and the limit (a public job also stops at the step and epoch caps,
    QAService.job_limits, whatever its options make). A local server trains what its user asks for."""
    if not settings.public:
        return config
    for option, field in LIMITED_OPTIONS.items():
        value, limit = getattr(config, option), getattr(settings.train_limits, field)
        if value > limit:
            raise ValueError(f"{option} {value} is over this server's limit of {limit:,g} ({LIMIT_VARIABLES[field]})")
    windows = config.per_device_train_batch_size * config.gradient_accumulation_steps
    if windows > settings.train_limits.batch_size:  # accumulation multiplies a step's work as a batch does
        raise ValueError(f"per_device_train_batch_size {config.per_device_train_batch_size} x "
                         f"gradient_accumulation_steps {config.gradient_accumulation_steps} = {windows} windows a "
                         f"step, over this server's limit of {settings.train_limits.batch_size} "
                         f"({LIMIT_VARIABLES['batch_size']})")
    check_window_cost(config, settings.train_limits.window_cost)
    check_per_job(config, settings.train_limits)
    if config.torch_compile and not compiles(settings):
        raise ValueError(f"torch_compile is off on this server: compiling takes minutes of the shared CPU "
                         f"({LIMIT_VARIABLES['torch_compile']})")
    return config


def compiles(settings: Settings) -> bool:
    """Whether a job may compile its model here: on a local server always, on a public one with
    QA_ALLOW_TORCH_COMPILE (compiling holds the shared CPU for minutes)."""
    return not settings.public or settings.train_limits.torch_compile


def job_steps(config: QAConfig, limits: TrainLimits) -> int:
    """The most optimizer steps a public job takes: its max_steps, or the step cap it stops at."""
    return min(config.max_steps, limits.max_steps) if config.max_steps > 0 else limits.max_steps


def check_per_job(config: QAConfig, limits: TrainLimits) -> None:
    """Refuse an every-N-steps option that makes a job do its costly thing more times than the server allows."""
    steps = job_steps(config, limits)
    for option, (field, does) in PER_JOB_OPTIONS.items():
        every, limit = getattr(config, option), getattr(limits, field)
        if steps // every > limit:
            raise ValueError(f"{option} {every} {does} up to {steps // every:,} times in a job of {steps:,} steps; "
                             f"this server allows it at most {limit:,} times a job ({LIMIT_VARIABLES[field]}): "
                             f"raise {option} to {steps // (limit + 1) + 1:,} or more")


def window_advance(config: QAConfig) -> int:
    """Context tokens each window moves past the one before, for the longest question (max_query_length) and the
    most special tokens any model adds; 0 or less where the stride leaves no room to move."""
    return context_room(config.max_seq_length, config.max_query_length, MOST_SPECIAL_TOKENS) - config.doc_stride


def window_cost(config: QAConfig) -> float:
    """Tokens computed per context token: a long context is cut into about (its tokens / advance) windows of
    max_seq_length tokens each, in featurizing, training and evaluation alike."""
    advance = window_advance(config)
    return config.max_seq_length / advance if advance > 0 else float("inf")


def check_window_cost(config: QAConfig, limit: float) -> None:
    """Refuse a stride so close to the window's context room that each question's windows multiply."""
    cost = window_cost(config)
    if cost > limit:
        advance = window_advance(config)
        how = (f"advances each window by {advance} token(s) of context, {cost:,.0f} tokens computed per context "
               f"token" if advance > 0 else "leaves a window no context to advance by")
        raise ValueError(f"doc_stride {config.doc_stride} with max_seq_length {config.max_seq_length} and "
                         f"max_query_length {config.max_query_length} {how}; this server allows up to {limit:g} "
                         f"tokens per context token ({LIMIT_VARIABLES['window_cost']}): lower doc_stride")


def check_resume_limits(config: QAConfig, settings: Settings, run: str, step: int = 0, epoch: float = 0.0) -> None:
    """A run continues with its own options, so a public server refuses one that read more questions than it
    allows (a run trained elsewhere, or before the limit) instead of announcing a resume that cannot continue;
    likewise a run at `step` or `epoch` that has reached the step or epoch cap (its job would stop again at once)."""
    limits = settings.train_limits
    for done, field, unit in ((step, "max_steps", "steps"), (epoch, "epochs", "epochs")):
        limit = getattr(limits, field)
        if settings.public and done >= limit:
            raise ValueError(f"run {run} has done {amount(done)} {unit}, this server's limit of {amount(limit)} "
                             f"{unit} ({LIMIT_VARIABLES[field]}), so it cannot continue here")
    cap = settings.max_train_examples
    for option in ("max_train_samples", "max_eval_samples"):
        value = getattr(config, option)
        if cap is not None and (value is None or value > cap):
            raise ValueError(f"run {run} reads {'all' if value is None else value} questions ({option}); this "
                             f"server trains on at most {cap:,} (QA_MAX_TRAIN_EXAMPLES), so it cannot continue here")


def amount(number: float) -> str:
    """A count of steps or epochs in words: 2,000, not 2000.0 or 2e+03; 2.5 as it is."""
    return f"{int(number):,}" if float(number).is_integer() else f"{number:,}"


def resume_config(folder: Path, settings: Settings) -> QAConfig:
    """The config that continues the stopped run in `folder` from its checkpoint (--resume), after checking that
    it can: not finished, a checkpoint, usable settings, its data still there, within this server's limits."""
    info = read_run_info(folder)
    if info.status == "finished" and has_model(folder):
        raise ValueError(f"run {folder.name} has finished; nothing to resume")
    if find_checkpoint(folder) is None:
        raise ValueError(f"run {folder.name} stopped before its first checkpoint, so there is nothing to "
                         f"resume; start a new run")
    try:
        config = QAConfig.from_saved(info.config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"run {folder.name}: its saved settings cannot be used ({err})") from None
    for source, what in ((config.train_file, "training data"), (config.validation_file, "evaluation data")):
        if Path(source or "").suffix.lower() in DATA_SUFFIXES and not Path(source).is_file():
            raise ValueError(f"run {folder.name}: its {what} {Path(source).name} is gone (an uploaded file is "
                             f"deleted when its job ends); start a new run")
    epoch = max((float(h.get("epoch", 0.0)) for h in info.history), default=0.0)  # at its evaluations
    check_resume_limits(config, settings, folder.name, info.step, epoch)
    # the folder as the run named it (runs/<run>), as a new job's status shows it, unless the run was moved here
    named = config.output_dir if Path(config.output_dir).resolve() == folder.resolve() else str(folder)
    return check_limits(config.replace(output_dir=named, resume=True, overwrite_output_dir=False), settings)
