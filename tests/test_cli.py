"""The command line: help and argument errors before torch loads, refusals in one line, train.py as a wrapper."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qa_core import cli
from qa_core.config import QAConfig
from tests.overfit_data import write_tiny_squad
from tests.tiny_runs import cli as train_py, fake_run

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "numpy", "tqdm", "huggingface_hub")
# Runs the CLI's main in a fresh interpreter and reports the exit code and any heavy package it loaded.
PROBE = """
import sys
import time
from qa_core.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("LOADED", sorted({m.split(".")[0] for m in sys.modules} & set(%r)), "EXIT", code, file=sys.stderr)
""" % (HEAVY,)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=60)


def loaded_and_exit(done: subprocess.CompletedProcess) -> tuple[str, str]:
    line = done.stderr.strip().splitlines()[-1]
    loaded, code = line.removeprefix("LOADED ").split(" EXIT ")
    return loaded, code


@pytest.mark.parametrize("args", [("--help",), ("train", "--help"), ("predict", "--help"), ("app", "--help")])
def test_help_loads_nothing_heavy(args: tuple[str, ...]):
    done = run_cli(*args)
    assert loaded_and_exit(done) == ("[]", "0")
    assert "usage:" in done.stdout


@pytest.mark.parametrize("command, defaults", [
    ("evaluate", ("as the model's run (its run.json), else off", "the model's run's (its run.json), else 0.0")),
    ("predict", ("on for a run whose evaluation was SQuAD 2.0 (its eval_metrics.json), else off",
                 "the best_f1_thresh of that evaluation, else 0.0")),
])
def test_help_says_what_evaluate_and_predict_take_from_the_run(command: str, defaults: tuple[str, str]):
    """Their SQuAD 2.0 options default to the run's settings, not to QAConfig's False and 0.0."""
    text = " ".join(run_cli(command, "--help").stdout.split())
    assert "null score wins. (default: False)" not in text and "(SQuAD 2.0 only). (default: 0.0)" not in text
    assert all(f"(default: {default})" in text for default in defaults)


@pytest.mark.parametrize("args, message", [
    (("train", "--max_seq_length", "abc"), "invalid int value: 'abc'"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
    (("train", "--train_file", "sample", "--doc_stride", "500"), "doc_stride (500) must be smaller"),
    (("train", "--train_file", "sample", "--learning_rate", "1e30"), "learning_rate must be at most 1 "),
    (("predict", "--question", "Who?"), "predict needs --question and --context, or --test_file"),
    (("train", "--output_dir", "runs/x"), "train needs --train_file"),
    (("train", "--train_file", "", "--output_dir", "runs/x"), "train needs --train_file"),
    (("evaluate", "--model_name_or_path", "embedded"), "evaluate needs --validation_file"),
    (("predict", "--question", "", "--context", "Mara kept bees."), "predict: --question is empty"),
    (("predict", "--question", ""), "predict: --question is empty"),
    (("predict", "--question", "Who kept bees?", "--context", " \n"), "predict: --context is empty"),
])
def test_bad_arguments_fail_before_anything_heavy_loads(args: tuple[str, ...], message: str):
    done = run_cli(*args)
    assert loaded_and_exit(done) == ("[]", "2")
    assert message in done.stderr


def test_push_to_hub_offline_is_refused_in_one_line_before_training(tmp_path: Path):
    run = tmp_path / "run"
    done = run_cli("train", "--train_file", "sample", "--output_dir", str(run), "--push_to_hub",
                   "--hub_model_id", "user/x", HF_HUB_OFFLINE="1")
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "--push_to_hub: HF_HUB_OFFLINE is set" in errors[0], done.stderr
    assert loaded_and_exit(done)[1] == "2" and not run.exists()


def test_train_py_is_the_same_command():
    done = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: train.py") and "{train,evaluate,predict,app}" in done.stdout


def test_app_command_and_app_py_serve_the_same_packaged_app():
    import app
    from qa_core.ui.app import main

    assert app.main is main  # `python app.py` (the Space) and `qa-lab app` (any install) run one function


def test_predict_answers_a_question(tiny_model_dir: Path, capsys: pytest.CaptureFixture):
    code = cli.main(["predict", "--model_name_or_path", str(tiny_model_dir), "--question", "Who keeps the hives?",
                     "--context", "A beekeeper named Tomas keeps four hives."])
    assert code == 0
    assert '"answer"' in capsys.readouterr().out


def test_predict_writes_its_output_file_into_a_new_folder(tiny_model_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture):
    output = tmp_path / "new" / "folder" / "predictions.json"
    code = cli.main(["predict", "--model_name_or_path", str(tiny_model_dir), "--test_file", "sample",
                     "--output_file", str(output), "--max_seq_length", "64", "--doc_stride", "16",
                     "--max_query_length", "16"])
    assert code == 0 and json.loads(capsys.readouterr().out)["questions"] == len(json.loads(output.read_text()))


def test_predict_answers_a_test_file_without_gold_answers(tiny_model_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture):
    """What predict is for: questions nobody has answered yet (flat JSONL and SQuAD layout, no 'answers')."""
    context = "A beekeeper named Tomas keeps four hives."
    (tmp_path / "q.jsonl").write_text(json.dumps({"id": "u1", "question": "Who keeps hives?", "context": context}))
    squad = {"data": [{"paragraphs": [{"context": context, "qas": [{"id": "u2", "question": "How many hives?"}]}]}]}
    (tmp_path / "q.json").write_text(json.dumps(squad))
    for name, qid in (("q.jsonl", "u1"), ("q.json", "u2")):
        assert cli.main(["predict", "--model_name_or_path", str(tiny_model_dir), "--test_file",
                         str(tmp_path / name)]) == 0
        answers = json.loads(capsys.readouterr().out)
        assert list(answers) == [qid] and answers[qid] in context


def test_a_predict_output_file_that_cannot_be_written_is_refused_before_anything_loads(tmp_path: Path):
    (tmp_path / "afile").write_text("x")
    line = refused("predict", "--test_file", "sample", "--output_file", str(tmp_path))
    assert f"--output_file {tmp_path} is a folder" in line
    line = refused("predict", "--test_file", "sample", "--output_file", str(tmp_path / "afile" / "p.json"))
    assert f"--output_file {tmp_path / 'afile' / 'p.json'}: {tmp_path / 'afile'} is a file" in line
    data = write_tiny_squad(tmp_path / "d.json")  # found by trying the CLI: the answers replaced the questions
    line = refused("predict", "--test_file", str(data), "--output_file", f"{tmp_path}/./d.json")
    assert f"--output_file {tmp_path}/./d.json is the --test_file" in line and json.loads(data.read_text())["data"]
    from qa_core.data_sources import SAMPLE_PATH

    line = refused("predict", "--test_file", "sample", "--output_file", str(SAMPLE_PATH))  # the package's own data
    assert "is the --test_file" in line and json.loads(SAMPLE_PATH.read_text())["data"]
    line = refused("predict", "--question", "Who?", "--context", "Ann.", "--output_file", str(tmp_path / "p.json"))
    assert "--output_file is for the answers to --test_file" in line  # it was silently never written


def test_predict_refuses_to_replace_an_existing_output_file_unless_told(tiny_model_dir: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture):
    """Found by trying the CLI: --output_file silently replaced any file, a SQuAD data file too; --output_dir
    refuses that without --overwrite_output_dir, and so does --output_file now."""
    data = write_tiny_squad(tmp_path / "d.json")
    existing = write_tiny_squad(tmp_path / "other-squad.json")
    kept = existing.read_text()
    line = refused("predict", "--test_file", str(data), "--output_file", str(existing))
    assert f"--output_file {existing} already exists" in line and "--overwrite_output_dir" in line
    assert existing.read_text() == kept
    windows = ["--max_seq_length", "64", "--doc_stride", "16", "--max_query_length", "16"]
    assert cli.main(["predict", "--model_name_or_path", str(tiny_model_dir), "--test_file", str(data),
                     "--output_file", str(existing), "--overwrite_output_dir", *windows]) == 0
    answers = json.loads(existing.read_text())
    assert json.loads(capsys.readouterr().out)["questions"] == len(answers) and "data" not in answers


def refused(*args: str) -> str:
    """The one error line of a command refused before torch loads."""
    done = run_cli(*args)
    assert loaded_and_exit(done) == ("[]", "2"), done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, done.stderr
    return errors[0]


def test_training_into_the_model_it_trains_from_is_refused(tmp_path: Path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    run = fake_run(tmp_path / "run", status="finished")
    (run / "checkpoint" / "config.json").write_text("{}")  # its checkpoint is a model folder too
    for source, target in ((model, model), (run, run), (run / "model", run), (run / "checkpoint", run)):
        line = refused("train", "--train_file", "sample", "--model_name_or_path", str(source), "--output_dir",
                       str(target), "--overwrite_output_dir")
        assert f"output_dir {target} holds the model being trained from" in line
    assert (model / "model.safetensors").read_bytes() == b"weights" and (run / "model" / "config.json").exists()
    assert (run / "checkpoint" / "config.json").exists()
    # a model in a folder of its own inside output_dir is no run record: training there clears none of it
    from qa_core.preflight import check_not_training_into_its_model

    shutil.copytree(model, tmp_path / "exp" / "base")
    check_not_training_into_its_model(QAConfig(model_name_or_path=str(tmp_path / "exp" / "base"),
                                               output_dir=str(tmp_path / "exp")))


@pytest.mark.parametrize("overwrite", [(), ("--overwrite_output_dir",)])
def test_evaluating_a_runs_model_folder_into_itself_points_to_the_run(tmp_path: Path, overwrite: tuple[str, ...]):
    """It said to pass --overwrite_output_dir, which would have put evaluation files beside the weights in the
    folder pushed to the Hub; the run folder is where a run's evaluation goes, replacing only its eval files."""
    run = fake_run(tmp_path / "run", status="finished")
    (run / "model" / "model.safetensors").write_bytes(b"weights")
    line = refused("evaluate", "--validation_file", "sample", "--model_name_or_path", str(run / "model"),
                   "--output_dir", str(run / "model"), *overwrite)
    assert f"output_dir {run / 'model'} is the model folder of run {run}" in line
    assert f"evaluate into the run folder {run}" in line and "--overwrite_output_dir" not in line
    assert sorted(p.name for p in (run / "model").iterdir()) == ["config.json", "model.safetensors"]


@pytest.mark.parametrize("command", [("train", "--train_file", "sample"), ("evaluate", "--validation_file", "sample")])
def test_an_output_dir_that_is_a_file_is_refused_before_anything_loads(tmp_path: Path, command: tuple[str, ...]):
    (tmp_path / "out").write_text("x")
    assert f"output_dir {tmp_path / 'out'} is a file" in refused(*command, "--output_dir", str(tmp_path / "out"))


@pytest.mark.parametrize("option", ["train_file", "validation_file"])
def test_a_missing_data_file_is_refused_before_anything_loads(tmp_path: Path, option: str):
    other = "validation_file" if option == "train_file" else "train_file"
    line = refused("train", f"--{option}", str(tmp_path / "nowhere.json"), f"--{other}", "sample",
                   "--output_dir", str(tmp_path / "r"))
    assert f"--{option} {tmp_path / 'nowhere.json'}: no such data file" in line
    line = refused("predict", "--test_file", "missing/dev.json")
    assert "--test_file missing/dev.json: no such data file" in line


def test_predict_refuses_a_question_beside_a_test_file():
    line = refused("predict", "--test_file", "sample", "--question", "Who?", "--context", "Mara.")
    assert "either --question and --context, or --test_file" in line


def test_predict_refuses_text_that_is_not_valid_unicode_before_anything_loads():
    """Found by a tester: a byte that is not UTF-8 (Python reads it as a lone surrogate) reached the tokenizer as
    'TypeError: TextInputSequence must be str', with a traceback."""
    line = refused("predict", "--question", "Who?", "--context", "Fresnel \udcff designed it")
    assert "predict: --context is not UTF-8 (byte 0xff at character 8)" in line


def test_predict_refuses_a_test_file_whose_text_is_not_valid_unicode(tiny_model_dir: Path, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture):
    """Found by a tester: a SQuAD file holding the JSON escape \\ud800 failed in the tokenizer with a traceback."""
    squad = {"data": [{"paragraphs": [{"context": "Fresnel \ud800 did it.", "qas": [{"id": "u1", "question": "Who?"}]}]}]}
    (tmp_path / "q.json").write_text(json.dumps(squad))
    with caplog.at_level("ERROR"):
        assert cli.main(["predict", "--model_name_or_path", str(tiny_model_dir), "--test_file",
                         str(tmp_path / "q.json")]) == 2
    assert (f"{tmp_path / 'q.json'}: data[0].paragraphs[0]: field 'context' is not valid Unicode (an unpaired "
            f"surrogate at character 8)") in caplog.text


def test_a_stopped_run_rerun_without_resume_suggests_resume(tmp_path: Path):
    run = fake_run(tmp_path / "run")
    line = refused("train", "--train_file", "sample", "--output_dir", str(run))
    assert "--resume to continue it, or --overwrite_output_dir" in line


@pytest.mark.parametrize("overwrite", [(), ("--overwrite_output_dir",)])
def test_resume_without_a_checkpoint_gives_advice_that_works(tmp_path: Path, overwrite: tuple[str, ...]):
    run = fake_run(tmp_path / "run", checkpoint=False)
    line = refused("train", "--train_file", "sample", "--output_dir", str(run), "--resume", *overwrite)
    assert "nothing to resume" in line and "without --resume" in line
    assert ("start it again with --overwrite_output_dir" in line) == (not overwrite)


def test_resume_of_a_folder_that_does_not_exist_says_so(tmp_path: Path):
    """It said the run 'stopped before its first checkpoint': a mistyped folder read as a run."""
    line = refused("train", "--train_file", "sample", "--output_dir", str(tmp_path / "runz"), "--resume")
    assert f"--resume: {tmp_path / 'runz'} does not exist, so there is no run to resume" in line


def test_resume_refuses_options_that_change_the_training(tmp_path: Path):
    run = fake_run(tmp_path / "run", train_file="sample", learning_rate=1e-4, seed=3)
    line = refused("train", "--train_file", "sample", "--output_dir", str(run), "--resume",
                   "--model_name_or_path", "distilbert-base-uncased", "--learning_rate", "0.5", "--seed", "3")
    assert "--model_name_or_path distilbert-base-uncased (run: embedded)" in line
    assert "--learning_rate 0.5 (run: 0.0001)" in line and "--seed" not in line


def test_predict_with_a_threshold_keeps_the_run_s_squad_v2_setting(tiny_model_dir: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture):
    model = tmp_path / "v2-model"
    shutil.copytree(tiny_model_dir, model)
    (model / "eval_metrics.json").write_text(json.dumps({"exact": 50.0, "f1": 50.0, "best_f1_thresh": 1e9}))
    question = ["--question", "Who keeps the hives?", "--context", "A beekeeper named Tomas keeps four hives."]
    assert cli.main(["predict", "--model_name_or_path", str(model), *question]) == 0
    answered = json.loads(capsys.readouterr().out)
    assert answered["null_score"] is not None and answered["answer"] != ""  # the run's threshold: never abstain
    assert cli.main(["predict", "--model_name_or_path", str(model), "--null_score_diff_threshold=-1e9",
                     *question]) == 0
    abstained = json.loads(capsys.readouterr().out)
    assert abstained["null_score"] is not None and abstained["answer"] == ""  # still SQuAD 2.0, at the given threshold


def test_predict_lists_each_alternative_text_once(tiny_model_dir: Path, capsys: pytest.CaptureFixture):
    """Found by a tester: ["10th", 0.159], ["10th", 0.089] (one word twice in the context), which predict's output,
    giving no span per alternative, shows as one answer listed twice."""
    context = "Ann. Ann. Ann. Ann. Ann. Ann. Ann. Ann."  # the tiny BERT ranks two "Ann." spans in its top 5
    assert cli.main(["predict", "--model_name_or_path", str(tiny_model_dir), "--question", "Who?",
                     "--context", context]) == 0
    texts = [a["answer"] for a in json.loads(capsys.readouterr().out)["alternatives"]]
    assert len(texts) == len(set(texts)) == 5, texts  # five texts still, the next ones taking the freed places


# The tiny BERT ranks two "Ann." spans in its top 5, so predict's five texts reach past /answer's five spans.
REPEATED = ("Who?", "Ann. Ann. Ann. Ann. Ann. Ann. Ann. Ann.")


def answered_by_the_app(runs: Path, default: Path, model: str, question: str, context: str) -> dict:
    """/answer's reply from a local server of runs whose default model is default; model: a run name, or "" for
    the default."""
    import asyncio

    from qa_core.settings import Settings
    from qa_core.service import QAService

    service = QAService(Settings(runs, str(default), training_enabled=False, fast_inference=False))
    return asyncio.run(service.answer_json(model, question, context))


def predicted(model: Path, capsys: pytest.CaptureFixture, question: str, context: str) -> dict:
    assert cli.main(["predict", "--model_name_or_path", str(model), "--question", question,
                     "--context", context]) == 0
    return json.loads(capsys.readouterr().out)


def calibrated_run(tiny_model_dir: Path, run: Path, temperature: float) -> Path:
    """A finished run of the tiny model with a temperature fitted (as if on enough questions)."""
    from qa_core.calibration import Calibration, write_calibration
    from qa_core.checkpoints import write_run_info
    from qa_core.run_files import RunInfo

    shutil.copytree(tiny_model_dir, run / "model")
    write_run_info(run, RunInfo("finished", QAConfig(output_dir=str(run)).to_dict()))
    write_calibration(run, Calibration(temperature, 0.2, 0.1, 60, (), (), abstentions=0))
    return run


def test_predict_gives_the_probabilities_the_app_gives_at_the_run_s_temperature(tiny_model_dir: Path,
                                                                               tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture):
    """Found by a tester: predict printed the model's raw probabilities where the Ask tab and /answer scale them
    at the run's fitted temperature, so one question to one model got two probabilities."""
    run = calibrated_run(tiny_model_dir, tmp_path / "runs" / "calibrated", 3.0)
    app = answered_by_the_app(run.parent, tiny_model_dir, run.name, *REPEATED)
    answer = predicted(run, capsys, *REPEATED)
    assert app["calibrated"] and (answer["calibrated"], answer["temperature"]) == (True, 3.0)
    assert answer["probability"] == app["probability"] is not None
    app_spans = {(a["start"], a["end"]): a["probability"] for a in app["alternatives"]}
    assert len(answer["alternatives"]) == 5 < len(app_spans)  # each text once: a text's second place left out
    assert [a["probability"] for a in answer["alternatives"]] == [app_spans[a["start"], a["end"]]
                                                                  for a in answer["alternatives"]]
    assert sum(a["probability"] for a in answer["alternatives"]) <= 1.0 + 1e-9
    raw = predicted(tiny_model_dir, capsys, *REPEATED)  # the same model without a calibration: unscaled
    assert not raw["calibrated"] and raw["probability"] != answer["probability"]


def test_predict_gives_each_alternative_its_span_and_score_as_the_app_does(tiny_model_dir: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture):
    """Found by a tester: predict's alternatives were texts and probabilities only; /answer gives each its span
    (character start and end in the context) and score. Each text stays listed once, at its best occurrence."""
    app = answered_by_the_app(tmp_path / "runs", tiny_model_dir, "", *REPEATED)
    answer = predicted(tiny_model_dir, capsys, *REPEATED)
    context = REPEATED[1]
    assert set(answer) >= set(app) - {"model", "windows", "milliseconds"}  # /answer's keys, /answer's names
    assert [set(a) for a in answer["alternatives"]] == [set(app["alternatives"][0])] * 5
    assert all(context[a["start"]:a["end"]] == a["answer"] for a in answer["alternatives"])
    texts = [a["answer"] for a in answer["alternatives"]]
    assert len(set(texts)) == 5
    app_spans = {(a["start"], a["end"]): a for a in app["alternatives"]}
    for alternative in answer["alternatives"]:  # the best occurrence of each text: the first in /answer's order
        if (alternative["start"], alternative["end"]) in app_spans:
            assert alternative == app_spans[alternative["start"], alternative["end"]]
    best = {}
    for a in app["alternatives"]:
        best.setdefault(a["answer"], a)
    assert all(a == best[a["answer"]] for a in answer["alternatives"] if a["answer"] in best)
    assert (answer["start"], answer["end"], answer["score"]) == (app["start"], app["end"], app["score"])


def strict_json(text: str) -> object:
    """json.loads as strict readers (JavaScript, Go) parse: no Infinity or NaN."""
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_a_context_without_a_span_still_gives_strict_json(tiny_model_dir: Path, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture):
    blank = "\u200b\u200b\u200b"  # zero-width spaces: no token, so no span to weigh the null score against
    # one question is refused by name (nothing to read); in a data file such a context is one question of many
    assert cli.main(["predict", "--model_name_or_path", str(tiny_model_dir), "--version_2_with_negative",
                     "--question", "Who?", "--context", blank]) == 2
    assert "context has no words" in caplog.text
    data = tmp_path / "blank.json"
    data.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": blank, "qas": [
        {"id": "q", "question": "Who?", "answers": [], "is_impossible": True}]}]}]}))
    assert cli.main(["evaluate", "--model_name_or_path", str(tiny_model_dir), "--version_2_with_negative",
                     "--validation_file", str(data), "--output_dir", str(tmp_path / "eval")]) == 0
    odds = strict_json((tmp_path / "eval" / "eval_null_odds.json").read_text())
    assert odds["q"] > 1e300  # the largest float: abstains at any threshold, as evaluate-v2.0.py compares


def test_evaluating_a_squad_v2_run_keeps_it_squad_v2(tiny_model_dir: Path, tmp_path: Path):
    """Without --version_2_with_negative an evaluation of a v2 run's model follows the run (as predict does), so
    evaluating it into its own folder never turns it into a v1.1 run that no longer abstains."""
    from tests.v2_data import write_v2

    run, data = tmp_path / "v2-run", write_v2(tmp_path / "v2.json")
    shutil.copytree(tiny_model_dir, run / "model")
    config = {"version_2_with_negative": True, "null_score_diff_threshold": 0.5}
    (run / "run.json").write_text(json.dumps({"status": "finished", "config": config, "step": 1, "total_steps": 1}))
    assert cli.main(["evaluate", "--model_name_or_path", str(run / "model"), "--validation_file", str(data),
                     "--output_dir", str(run)]) == 0
    assert "HasAns_total" in json.loads((run / "eval_metrics.json").read_text())
    assert (run / "eval_null_odds.json").is_file()
    assert cli.main(["evaluate", "--model_name_or_path", str(run / "model"), "--validation_file", str(data),
                     "--output_dir", str(tmp_path / "v1"), "--no-version_2_with_negative"]) == 0
    assert "HasAns_total" not in json.loads((tmp_path / "v1" / "eval_metrics.json").read_text())


def test_a_squad_v2_training_prints_its_v2_figures(tiny_model_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture):
    """Found by a tester: train --version_2_with_negative printed only exact_match and f1 at its end, while its
    evaluation had the answerable and unanswerable slices and the best threshold (evaluate prints them)."""
    from tests.v2_data import write_v2

    data = write_v2(tmp_path / "v2.json")
    assert cli.main(["train", "--model_name_or_path", str(tiny_model_dir), "--train_file", str(data),
                     "--validation_file", str(data), "--output_dir", str(tmp_path / "run"), "--max_steps", "1",
                     "--version_2_with_negative", "--max_seq_length", "64", "--doc_stride", "16",
                     "--max_query_length", "16", "--per_device_train_batch_size", "4"]) == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((tmp_path / "run" / "eval_metrics.json").read_text())
    assert {k: printed[k] for k in stored} == stored and "best_f1_thresh" in printed and "NoAns_total" in printed


def test_evaluate_and_predict_take_a_runs_windows_unless_given(tiny_model_dir: Path, tmp_path: Path):
    """Evaluating a run trained on 64-token windows with 256-token ones changed its answers and scores (and, into
    its own folder, its calibration), though the run was named as the model."""
    from tests.overfit_data import PARAGRAPHS, write_squad

    context = " ".join(c for c, _ in PARAGRAPHS)  # several 64-token windows long
    data = write_squad(tmp_path / "long.json", [{"context": context, "qas": [
        {"id": qid, "question": question, "answers": [{"text": text, "answer_start": context.index(text)}]}
        for _, qas in PARAGRAPHS for qid, question, text in qas]}])
    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run / "model")
    windows = {"max_seq_length": 64, "doc_stride": 16, "max_query_length": 16, "n_best_size": 3}
    (run / "run.json").write_text(json.dumps({"status": "finished", "config": windows, "step": 1, "total_steps": 1}))

    def scores(command: str, out: Path, *options: str) -> list[float]:
        if command == "evaluate":
            assert cli.main(["evaluate", "--model_name_or_path", str(run), "--validation_file", str(data),
                             "--output_dir", str(out), *options]) == 0
            return [json.loads(line)["score"] for line in (out / "eval_records.jsonl").read_text().splitlines()]
        assert cli.main(["predict", "--model_name_or_path", str(run), "--test_file", str(data),
                         "--output_file", str(out), *options]) == 0
        return list(json.loads(out.read_text()).values())

    given = [f"--{name}={value}" for name, value in windows.items()]
    for command in ("evaluate", "predict"):
        followed = scores(command, tmp_path / f"{command}-followed")
        assert followed == scores(command, tmp_path / f"{command}-given", *given)
        assert followed != scores(command, tmp_path / f"{command}-own", "--max_seq_length=256", "--doc_stride=128",
                                  "--max_query_length=64", "--n_best_size=20")
        # one option given, the rest the run's: checked together, not against QAConfig's doc_stride of 128
        assert scores(command, tmp_path / f"{command}-shorter", "--max_seq_length=48")


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_ctrl_c_during_evaluate_or_predict_exits_130_in_one_line(command: str, tiny_model_dir: Path, tmp_path: Path):
    """Ctrl-C outside training's own stop handling is a plain interruption: exit 130 and one line, no traceback."""
    from tests.overfit_data import PARAGRAPHS, write_squad

    # enough questions that the work after the model loads takes far longer than delivering a signal
    paragraphs = [{"context": context, "qas": [{"id": f"{qid}-{n}", "question": question,
                                                 "answers": [{"text": text, "answer_start": context.index(text)}]}
                                                for qid, question, text in qas]}
                  for n in range(4000) for context, qas in PARAGRAPHS]
    data = write_squad(tmp_path / "many.json", paragraphs, title="many")
    data_option = "--validation_file" if command == "evaluate" else "--test_file"
    outputs = ["--output_dir", str(tmp_path / "out")] if command == "evaluate" else \
        ["--output_file", str(tmp_path / "out.json")]
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), command, "--model_name_or_path",
                                str(tiny_model_dir), data_option, str(data), *outputs],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in process.stderr:  # the model has loaded: the windows and forward passes are still ahead
        lines.append(line)
        if "loaded model from" in line:
            process.send_signal(signal.SIGINT)
            break
    stdout, rest = process.communicate(timeout=120)
    stderr = "".join(lines) + rest
    assert process.returncode == 130, stderr
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert "Traceback" not in stderr and len(errors) == 1 and f"{command} interrupted" in errors[0]
    assert stdout == ""


@pytest.mark.parametrize("last", ["done", "cancelled", "failed"])
def test_the_progress_bar_is_closed_however_training_ends(last: str):
    """An open bar redraws itself after the error line that ends a failed run."""
    from qa_core.progress import ProgressEvent

    bar = cli.ProgressBar(Path("runs/x"))
    bar(ProgressEvent("start", 0, 10, 0.0))
    bar(ProgressEvent(last, 3, 10, 0.3, message="why"))
    assert bar.bar.disable  # tqdm's mark of a closed bar


def test_the_progress_bar_moves_at_every_step_and_shows_the_loss_when_logged():
    from qa_core.progress import ProgressEvent

    bar = cli.ProgressBar(Path("runs/x"))
    bar(ProgressEvent("start", 0, 10, 0.0))
    bar(ProgressEvent("advance", 1, 10, 0.1, windows_per_s=5.0, eta_s=9.0))  # no loss between logged steps
    assert bar.bar.n == 1
    bar(ProgressEvent("step", 2, 10, 0.2, loss=1.5, learning_rate=1e-4, grad_norm=1.0, windows_per_s=5.0, eta_s=8.0))
    assert bar.bar.n == 2 and "loss=1.500" in str(bar.bar)
    bar(ProgressEvent("done", 10, 10, 1.0))


def test_cli_evaluate_and_predict(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """train.py itself evaluates (a process of its own, as users run it); predict runs in this one."""
    data = write_tiny_squad(tmp_path / "d.json")
    done = subprocess.run(train_py("evaluate", "--model_name_or_path", str(tiny_model_dir), "--validation_file", str(data),
                              "--output_dir", str(tmp_path / "eval")), capture_output=True, text=True, check=True)
    assert set(json.loads(done.stdout)) >= {"exact_match", "f1"}
    assert (tmp_path / "eval" / "eval_records.jsonl").exists()
    assert cli.main(["predict", "--model_name_or_path", str(tiny_model_dir), "--question", "Who kept bees?",
                     "--context", "Mara kept bees."]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["answer"] in "Mara kept bees." and len(answer["alternatives"]) == 5


def test_cli_reports_bad_data_clearly(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("nope")
    done = subprocess.run(train_py("train", "--train_file", str(tmp_path / "bad.json"), "--output_dir", str(tmp_path / "r")),
                          capture_output=True, text=True)
    assert done.returncode == 2 and "bad.json" in done.stderr and "not valid JSON" in done.stderr


def test_data_nested_too_deeply_or_with_too_long_a_number_gives_one_clear_line(tmp_path: Path) -> None:
    """Found by a tester: train.py ended in a RecursionError's traceback, or in Python's words on a 5,000-digit
    number ('use sys.set_int_max_str_digits()'), naming neither the file nor the record."""
    (tmp_path / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    (tmp_path / "long.jsonl").write_text('{"id": "q1", "question": "Who?", "context": "The keeper.", '
                                         '"answers": {"text": ["The keeper"], "answer_start": [' + "9" * 5000 + ']}}\n')
    for name, said in (("deep.json", "deep.json: file nests lists or objects too deeply to be read"),
                       ("long.jsonl", "long.jsonl: line 1 (id 'q1'): answers.answer_start[0] is a number of 5,000 "
                                      "digits")):
        done = subprocess.run(train_py("train", "--train_file", str(tmp_path / name), "--output_dir",
                                       str(tmp_path / "r")), capture_output=True, text=True)
        assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_bad_numbers_on_the_command_line_give_one_clear_line(tmp_path: Path) -> None:
    done = subprocess.run(train_py("train", "--train_file", "sample", "--num_train_epochs", "inf", "--output_dir",
                              str(tmp_path / "r")), capture_output=True, text=True)
    assert done.returncode == 2 and "num_train_epochs must be a finite number" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_abbreviation_is_not_taken_for_another_option(capsys: pytest.CaptureFixture):
    """--lr 3e-5 was read as --lr_scheduler_type and refused as an unknown scheduler."""
    with pytest.raises(SystemExit):
        cli.main(["train", "--train_file", "sample", "--lr", "3e-5"])
    assert "unrecognized arguments: --lr 3e-5" in capsys.readouterr().err


def test_a_threshold_that_cannot_apply_is_not_silently_ignored(tiny_model_dir: Path, caplog: pytest.LogCaptureFixture):
    """Found by trying the CLI: --null_score_diff_threshold on a v1.1 model changed nothing and said nothing."""
    with caplog.at_level("WARNING", logger="qa_core.cli"):
        assert cli.main(["predict", "--model_name_or_path", str(tiny_model_dir), "--question", "Who?", "--context",
                         "Ann came.", "--null_score_diff_threshold", "-100"]) == 0
    assert "--null_score_diff_threshold -100 has no effect" in caplog.text


def test_resume_names_every_option_that_differs_windows_too(tmp_path: Path):
    """It named --seed alone, and refused the wider stride only on the next try, once the model had loaded."""
    run = fake_run(tmp_path / "run", train_file="sample", seed=3)
    line = refused("train", "--train_file", "sample", "--output_dir", str(run), "--resume", "--seed", "5",
                   "--doc_stride", "150", "--max_query_length", "32")
    assert "--seed 5 (run: 3)" in line and "--max_query_length 32 (run: 64)" in line
    assert "--doc_stride 150 (run: 128, unless this model cuts it to 128)" in line
    assert line.index("--doc_stride") < line.index("--max_query_length") < line.index("--seed")  # the config's order


def test_an_evaluation_folder_is_told_apart_from_a_model(tiny_model_dir: Path, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture):
    """Found by trying predict on a `train.py evaluate --output_dir` folder (records, no run.json, no model): 'folder
    has no config.json, so it is not a transformers model'. It says what the folder is and which model it
    evaluated, where its files name it; evaluate given it (into itself too) says the same."""
    data, folder = write_tiny_squad(tmp_path / "data.json"), tmp_path / "eval"
    assert cli.main(["evaluate", "--model_name_or_path", str(tiny_model_dir), "--validation_file", str(data),
                     "--output_dir", str(folder)]) == 0
    uses = (["predict", "--question", "Who?", "--context", "Ann came."],
            ["evaluate", "--validation_file", str(data), "--output_dir", str(tmp_path / "again")],
            ["evaluate", "--validation_file", str(data), "--output_dir", str(folder)])
    for command, *options in uses:
        caplog.clear()
        assert cli.main([command, "--model_name_or_path", str(folder), *options]) == 2
        assert f"{folder} is an evaluation folder (train.py evaluate --output_dir)" in caplog.text, caplog.text
        assert f"use the model it evaluated, {tiny_model_dir.resolve()}, instead" in caplog.text, caplog.text
    assert (folder / "eval_records.jsonl").is_file()  # refused before it evaluated into itself
    (folder / "eval_model.json").unlink()  # an evaluation folder written before the model was recorded
    caplog.clear()
    assert cli.main(["predict", "--model_name_or_path", str(folder), "--question", "Who?", "--context", "Ann."]) == 2
    assert "use the model it evaluated instead (its files do not name it)" in caplog.text, caplog.text


def test_ctrl_c_before_training_started_says_there_is_nothing_to_resume(tmp_path: Path):
    """Found by trying the CLI: Ctrl-C while torch loaded said 'a run that had started is cancelled: continue it with
    --resume', though no run folder had been made. (A signal sent to a starting process lands at a time no test can
    choose: during an import it can break numpy's own, so the advice is checked on the folder it reads.)"""
    assert cli.left_to_do(tmp_path / "never-made") == "it stopped before training started: nothing to resume"
    (tmp_path / "empty").mkdir()
    assert cli.left_to_do(tmp_path / "empty") == "it stopped before training started: nothing to resume"


def test_a_sigterm_while_starting_says_so_and_exits_as_that_signal_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                         caplog: pytest.LogCaptureFixture):
    """Found by trying the CLI: a SIGTERM in train.py's first seconds (torch loading) ended it silently by the
    signal's default action, where Ctrl-C at that moment said what was left to do. The signal is sent where the
    checks before torch run, a moment a test can choose."""
    import os
    import signal

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "check_paths", lambda args, config: os.kill(os.getpid(), signal.SIGTERM))
    code = cli.main(["train", "--train_file", "sample", "--output_dir", str(tmp_path / "run")])
    assert code == 128 + signal.SIGTERM
    assert "train interrupted (SIGTERM); it stopped before training started: nothing to resume" in caplog.text
    assert signal.getsignal(signal.SIGTERM) is before  # the handler goes back as it was


def test_resume_of_a_finished_run_says_it_had_finished(tiny_model_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture):
    """Found by trying the CLI: --resume of a finished run printed its JSON again, as if it had just finished."""
    data = write_tiny_squad(tmp_path / "d.json")
    args = ["train", "--model_name_or_path", str(tiny_model_dir), "--train_file", str(data), "--validation_file",
            str(data), "--output_dir", str(tmp_path / "run"), "--max_seq_length", "64", "--doc_stride", "16",
            "--max_query_length", "16", "--max_steps", "2"]
    assert cli.main(args) == 0
    first = json.loads(capsys.readouterr().out)
    caplog.set_level(logging.INFO)
    assert cli.main([*args, "--resume"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["status"] == "finished" and again["step"] == first["step"] == 2
    said = [r.getMessage() for r in caplog.records if "already finished" in r.getMessage()]
    assert said == [f"the run in {tmp_path / 'run'} had already finished at step 2: nothing was trained"], said
