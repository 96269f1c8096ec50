"""Command line `qa-lab {train,evaluate,predict,app}` (also `python train.py ...`); torch loads only after parsing."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa_core.cli_options import build_parser, config_from_args
from qa_core.config import QAConfig
from qa_core.data_sources import check_unicode
from qa_core.preflight import check_paths
from qa_core.runtime import Terminated, sigterm_as_interrupt

if TYPE_CHECKING:
    from qa_core.modeling import LoadedModel
    from qa_core.progress import ProgressEvent

logger = logging.getLogger(__name__)

DATA_OPTIONS = {"train": "train_file", "evaluate": "validation_file"}  # the data each command cannot do without


class ProgressBar:
    """Draws qa_core's progress events with tqdm; the web app consumes the same events. Evaluations are not
    written here: training logs them, and run_train sends log lines above the bar."""

    def __init__(self, output_dir: Path) -> None:
        self.bar = None
        self.output_dir = output_dir

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=event.total_steps, initial=event.step, unit="step", dynamic_ncols=True)
        self.bar.update(event.step - self.bar.n)
        if event.kind == "step":
            self.bar.set_postfix(loss=f"{event.loss:.3f}", lr=f"{event.learning_rate:.2e}",
                                 windows_s=f"{event.windows_per_s:.1f}", epoch=f"{event.epoch:.2f}")
        elif event.kind in ("done", "cancelled", "failed"):  # the error itself is logged by run_command
            self.bar.close()
            if event.kind == "cancelled":
                logger.warning("stopped at step %d: %s; %s", event.step, event.message, left_to_do(self.output_dir))


class WindowBar:
    """Draws the windows an evaluation has scored with tqdm, as ProgressBar draws training's steps."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, scored: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc="evaluating", unit="window", dynamic_ncols=True)
        self.bar.update(scored - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def left_to_do(output_dir: Path) -> str:
    """What a stopped training leaves to do, as its folder is now: --resume only where a checkpoint waits, else
    what a new run there needs (check_output_dir refuses a folder holding records without the flag)."""
    from qa_core.run_files import find_checkpoint, held_outputs, stopped_run

    if stopped_run(output_dir):
        return "continue it with --resume"
    if not held_outputs(output_dir):
        return "it stopped before training started: nothing to resume"
    if find_checkpoint(output_dir) is None:
        return (f"nothing was saved to resume from (no checkpoint in {output_dir}): start again with "
                f"--overwrite_output_dir, or into another --output_dir")
    return f"the run in {output_dir} had finished: nothing to resume"


def run_train(args: argparse.Namespace, config: QAConfig) -> dict[str, Any]:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from qa_core.runtime import stop_on_signals
    from qa_core.training import train

    # Ctrl-C or SIGTERM: a checkpoint at the step's end, then --resume. Log lines go above the bar, not into it.
    with stop_on_signals() as stop, logging_redirect_tqdm():
        result = train(config, callback=ProgressBar(Path(config.output_dir)), should_stop=stop)
    # a signal that came once no step was left (the last evaluation, the final model) stopped nothing
    stopped = stop.signum is not None and result.status == "cancelled"
    stopped_by = {"stopped_by": signal.Signals(stop.signum).name} if stopped else {}
    # run.json's figure, every session's; a resumed run also says what this session added
    resumed = result.total_train_seconds > result.train_seconds + 0.05
    session = {"session_seconds": round(result.train_seconds, 1)} if resumed else {}
    return {"output_dir": result.output_dir, "status": result.status, "step": result.step,
            "train_seconds": round(result.total_train_seconds, 1), **session, **stopped_by, **result.metrics}


def push_trained_run(args: argparse.Namespace, output: dict[str, Any]) -> str:
    """Upload a finished run's model folder with its model card (time and hardware come from run.json)."""
    from qa_core.model_card import push_run

    return push_run(output["output_dir"], args.hub_model_id)


def run_evaluate(args: argparse.Namespace, config: QAConfig) -> dict[str, Any]:
    from qa_core.evaluation import run_evaluation

    from tqdm.contrib.logging import logging_redirect_tqdm

    warn_if_threshold_unused(args, config)  # the config follows the model's run already (followed_settings)
    with contextlib.closing(WindowBar()) as bar, logging_redirect_tqdm():  # log lines above the bar
        result = run_evaluation(config, progress=bar)
    return {"output_dir": config.output_dir, **result.metrics.to_dict()}


def warn_if_threshold_unused(args: argparse.Namespace, config: QAConfig) -> None:
    if args.null_score_diff_threshold is not None and not config.version_2_with_negative:
        logger.warning("--null_score_diff_threshold %g has no effect: the model answers SQuAD v1.1 style (every "
                       "question answered); add --version_2_with_negative to let it abstain",
                       args.null_score_diff_threshold)


def run_predict(args: argparse.Namespace, config: QAConfig) -> dict[str, Any]:
    from qa_core.data import load_examples
    from qa_core.inference import answer_examples
    from qa_core.run_settings import config_for_model
    from qa_core.modeling import load_model, warn_if_untrained

    # the questions first: a bad test file is refused before the model loads
    examples = load_examples(args.test_file, "validation", answers_required=False).examples if args.test_file else ()
    loaded = load_model(config.model_name_or_path)
    warn_if_untrained(loaded)
    if args.version_2_with_negative is not False:  # a SQuAD 2.0 run answers as one, at its best threshold...
        config = config_for_model(loaded.source, config)
    if args.null_score_diff_threshold is not None:  # ...unless a threshold is given
        config = config.replace(null_score_diff_threshold=args.null_score_diff_threshold)
    warn_if_threshold_unused(args, config)
    if not args.test_file:
        return predict_one(loaded, args.question, args.context, config)
    answers = answer_examples(loaded, examples, config)
    if args.output_file:
        write_answers(Path(args.output_file), answers)
        return {"output_file": args.output_file, "questions": len(answers)}
    return answers


def write_answers(path: Path, answers: dict[str, str]) -> None:
    """The answers replace the file whole or not at all: a full disk leaves an earlier file as it was."""
    from qa_core.file_writes import no_room_said, write_file_atomically

    with no_room_said(str(path), f"{path} left as it was", "predict again"):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomically(path, json.dumps(answers, ensure_ascii=False, indent=1))


def predict_one(loaded: LoadedModel, question: str, context: str, config: QAConfig) -> dict[str, Any]:
    """One answer by /answer's names (postprocess.prediction_json), with its probabilities as /answer gives them:
    over the same spans, at the run's temperature. Its alternatives list each text once (a text found twice would
    read as one answer listed twice where no place is shown), at its best occurrence with that span's place."""
    from qa_core.calibration import calibrate_prediction
    from qa_core.inference import answer_question
    from qa_core.postprocess import ANSWER_TOP_K, distinct_texts, prediction_json

    prediction = answer_question(loaded, question, context, config, top_k=ANSWER_TOP_K).prediction
    prediction, temperature, uncalibrated = calibrate_prediction(prediction, loaded.source)
    return prediction_json(prediction, distinct_texts(prediction.alternatives), temperature, uncalibrated)


def run_app() -> None:
    """Serve the web app: the same `main()` that `python app.py` calls, installed with the package."""
    try:
        from qa_core.ui.app import main as serve
    except ImportError as err:
        raise ValueError(f"the web app needs the [app] extra (pip install \".[app]\"): {err}") from None
    serve()


def check_args(args: argparse.Namespace) -> None:
    """Refuse, before anything heavy loads, what would fail only after minutes of work."""
    needed = DATA_OPTIONS.get(args.command)
    if needed and not (getattr(args, needed) or "").strip():
        raise ValueError(f"{args.command} needs --{needed} (a SQuAD JSON or JSON Lines file, 'sample', or a hub "
                         f"data set)")
    if args.command == "predict":
        check_predict_args(args)
    if getattr(args, "push_to_hub", False):
        from qa_core.model_card import check_can_push

        check_can_push()


def check_argument_bytes(value: str, name: str) -> None:
    """Python reads an argument's bytes that are not UTF-8 as lone surrogates (U+DC80-U+DCFF): name the byte, which
    is what the user typed, before check_unicode names any other surrogate."""
    for position, char in enumerate(value):
        if "\udc80" <= char <= "\udcff":
            raise ValueError(f"{name} is not UTF-8 (byte 0x{ord(char) - 0xdc00:02x} at character {position}); "
                             "check the terminal's encoding")
    check_unicode(value, name)


def check_predict_args(args: argparse.Namespace) -> None:
    """A question and its context, each with some text, or a test file: an empty one is named, not called missing."""
    given = {name: getattr(args, name) for name in ("question", "context") if getattr(args, name) is not None}
    if args.test_file and given:
        raise ValueError("predict takes either --question and --context, or --test_file, not both")
    for name, value in given.items():
        if not value.strip():
            raise ValueError(f"predict: --{name} is empty; give it some text")
        check_argument_bytes(value, f"predict: --{name}")
    if not args.test_file and len(given) < 2:
        raise ValueError("predict needs --question and --context, or --test_file")


COMMANDS = {"train": run_train, "evaluate": run_evaluate, "predict": run_predict}
CANCELLED_EXIT = 130  # a cancel without a signal (another should_stop); signals give 128 + their number, as shells
INTERRUPTED_EXIT = 128 + signal.SIGINT  # what shells report for a program stopped by Ctrl-C


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog, __doc__).parse_args(argv)
    with sigterm_as_interrupt():  # until training's own handlers: stopped while torch loads, it says so
        return run_main(args)


def run_main(args: argparse.Namespace) -> int:
    """The command, its refusals in one line and an interruption outside training's own stop handling."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config: QAConfig | None = None
    try:
        check_args(args)
        if args.command == "app":
            run_app()
            return 0
        config = config_from_args(args)
        check_paths(args, config)
        return run_command(args, config)
    except ValueError as err:  # the arguments' checks; run_command says its own errors
        logger.error("%s", err)
        return 2
    except KeyboardInterrupt as err:  # outside training's own stop handling (which cancels at a step's end)
        left = f"; {left_to_do(Path(config.output_dir))}" if args.command == "train" and config else ""
        terminated = isinstance(err, Terminated)
        logger.error("%s interrupted (%s)%s", args.command, "SIGTERM" if terminated else "Ctrl-C", left)
        return 128 + signal.SIGTERM if terminated else INTERRUPTED_EXIT


def run_command(args: argparse.Namespace, config: QAConfig) -> int:
    """Run train/evaluate/predict in this process, one of possibly several torchrun/accelerate ranks."""
    from qa_core.runtime import configure_process

    configure_process()  # before torch loads: oneDNN reads its cache caps once
    from qa_core.file_writes import NoRoomError
    from qa_core.distributed import cleanup, init_distributed
    from qa_core.training import TrainingError

    dist_ctx = init_distributed()
    if not dist_ctx.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        output = COMMANDS[args.command](args, config)
        if dist_ctx.is_main and getattr(args, "push_to_hub", False) and output.get("status") == "finished":
            output["hub_url"] = push_trained_run(args, output)
    except ValueError as err:  # bad data (DataError), a missing model (ModelNotFoundError), an unreachable hub
        logger.error("%s", err)
        return 2
    except (TrainingError, NoRoomError) as err:  # diverged, or a full disk: run.json says "failed" (training's)
        logger.error("%s", err)
        return 1
    finally:
        cleanup(dist_ctx)
    if dist_ctx.is_main:
        from qa_core.postprocess import finite_floats

        # None for a number that is no JSON number: infinite null odds of a context without any span
        print(json.dumps(finite_floats(output, lambda _: None), ensure_ascii=False, indent=1, allow_nan=False))
    if args.command == "train" and output["status"] == "cancelled":
        return 128 + signal.Signals[output["stopped_by"]] if "stopped_by" in output else CANCELLED_EXIT
    return 0


def console_main() -> None:
    """Entry point of the `qa-lab` console command."""
    sys.exit(main(prog="qa-lab"))


if __name__ == "__main__":
    sys.exit(main(prog="python -m qa_core.cli"))
