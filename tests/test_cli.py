"""The command line: help and argument errors before torch loads, refusals in one line, train.py as a wrapper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa_core import cli

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "numpy", "tqdm", "huggingface_hub")
# Runs the CLI's main in a fresh interpreter and reports the exit code and any heavy package it loaded.
PROBE = """
import sys
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


@pytest.mark.parametrize("args, message", [
    (("train", "--max_seq_length", "abc"), "invalid int value: 'abc'"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
    (("train", "--doc_stride", "500"), "doc_stride (500) must be smaller"),
    (("predict", "--question", "Who?"), "predict needs --question and --context, or --test_file"),
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


def test_hub_options_use_run_qa_names():
    args = cli.build_parser().parse_args(["train", "--push_to_hub", "--hub_model_id", "me/minilm-squad"])
    assert (args.push_to_hub, args.hub_model_id) == (True, "me/minilm-squad")
    assert not hasattr(cli.config_from_args(args), "push_to_hub")  # a CLI action, not a training setting


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
