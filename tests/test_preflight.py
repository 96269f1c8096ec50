"""Checks before torch loads: a resume's refusals in both wordings, and what a resume may change."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_core import cli
from tests.tiny_runs import fake_run


def test_resume_refusals_have_the_web_apps_words_too(tmp_path: Path):
    """The same checks, for the web app's Resume (no options to pass): its settings by name, and a new run advised."""
    from qa_core import preflight
    from qa_core.config import QAConfig
    from qa_core.run_files import RunRefused

    run = fake_run(tmp_path / "run", train_file="sample", learning_rate=1e-4)
    with pytest.raises(RunRefused, match=r"--learning_rate 0.5 \(run: 0.0001\)") as refused:
        preflight.check_resume(QAConfig(train_file="sample", output_dir=str(run), resume=True, learning_rate=0.5))
    assert refused.value.web == ("run run: these settings differ from its run.json: learning_rate 0.5 (run: 0.0001); "
                                 "start a new run")
    empty = fake_run(tmp_path / "empty", checkpoint=False)
    with pytest.raises(RunRefused, match="without --resume") as refused:
        preflight.check_resume(QAConfig(train_file="sample", output_dir=str(empty), resume=True))
    assert "--" not in refused.value.web and refused.value.web.endswith("nothing to resume; start a new run")


def test_resume_accepts_what_may_change(tmp_path: Path):
    from qa_core import preflight

    run = fake_run(tmp_path / "run", train_file="sample", learning_rate=1e-4)
    args = cli.build_parser().parse_args([
        "train", "--train_file", "sample", "--output_dir", str(run), "--resume", "--learning_rate", "1e-4",
        "--max_steps", "50", "--num_train_epochs", "9", "--logging_steps", "1", "--save_steps", "3",
        "--dataloader_num_workers", "2", "--report_to", "tensorboard", "--per_device_eval_batch_size", "4"])
    preflight.check_paths(args, cli.config_from_args(args))  # no error


def test_resume_accepts_the_same_data_files_named_another_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from qa_core import preflight

    for name in ("train.json", "dev.json", "other.json"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "dev.json")
    run = fake_run(tmp_path / "run", train_file="train.json", validation_file="dev.json")
    monkeypatch.chdir(tmp_path)

    def check(train_file: str, validation_file: str) -> None:
        args = cli.build_parser().parse_args(["train", "--train_file", train_file, "--validation_file",
                                              validation_file, "--output_dir", str(run), "--resume"])
        preflight.check_paths(args, cli.config_from_args(args))

    for spelling in ("dev.json", "./dev.json", str(tmp_path / "dev.json"), "link.json"):
        check(str(tmp_path / "train.json"), spelling)  # no error
    with pytest.raises(ValueError, match=r"--validation_file other.json \(run: dev.json\)"):
        check("./train.json", "other.json")


def test_a_stride_is_checked_in_the_special_tokens_of_the_model_s_own_tokenizer(tmp_path: Path, tiny_model_dir: Path,
                                                                                caplog: pytest.LogCaptureFixture):
    """QAConfig counts BERT's 3 special tokens a pair; a local RoBERTa (4) is counted in its own, so a stride that
    fits only BERT's room is refused before the model loads, in the numbers of that model, rather than cut later."""
    import shutil

    from qa_core import preflight
    from tests.families import FAMILIES, build_family, sample_texts

    roberta = build_family(next(f for f in FAMILIES if f.name == "roberta"), tmp_path / "roberta", sample_texts())
    run = fake_run(tmp_path / "run")  # a run names its model/ folder's tokenizer
    shutil.copy(roberta / "tokenizer.json", run / "model" / "tokenizer.json")
    windows = ["--max_seq_length", "64", "--max_query_length", "16", "--doc_stride"]
    for model in (roberta, run):
        for command in (["train", "--train_file", "sample", "--output_dir", str(tmp_path / "out")],
                        ["evaluate", "--validation_file", "sample", "--output_dir", str(tmp_path / "eval")]):
            caplog.clear()
            assert cli.main([*command, "--model_name_or_path", str(model), *windows, "44"]) == 2
            assert ("doc_stride (44) must be smaller than the context room of a window (max_seq_length - "
                    "max_query_length - 4 special tokens = 44)") in caplog.text
            assert not (tmp_path / "out").exists() and not (tmp_path / "eval").exists()
    for model, stride in ((roberta, "43"), (tiny_model_dir, "44")):  # BERT's own room is one token wider
        args = cli.build_parser().parse_args(["train", "--train_file", "sample", "--model_name_or_path", str(model),
                                              "--output_dir", str(tmp_path / "out"), *windows, stride])
        preflight.check_paths(args, cli.config_from_args(args))  # no error


def test_resume_from_another_folder_accepts_the_run_s_own_relative_paths(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """Found by trying the CLI: a run started with relative paths was refused its own validation file when resumed
    from another working folder, since run.json's relative path was read from the new folder."""
    import json

    from qa_core import preflight

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "data").mkdir(parents=True)
    elsewhere.mkdir()
    for name in ("train.json", "dev.json", "other.json"):
        (project / "data" / name).write_text("{}")
    run = fake_run(project / "run", train_file="data/train.json", validation_file="data/dev.json")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "working_dir": str(project)}))  # where it was started
    monkeypatch.chdir(elsewhere)

    def check(validation_file: str) -> None:
        args = cli.build_parser().parse_args(["train", "--train_file", str(project / "data" / "train.json"),
                                              "--validation_file", validation_file, "--output_dir", str(run),
                                              "--resume"])
        preflight.check_paths(args, cli.config_from_args(args))

    check(str(project / "data" / "dev.json"))  # no error
    check("../project/data/dev.json")
    with pytest.raises(ValueError, match=r"--validation_file \S+other.json \(run: \S+/project/data/dev.json\)"):
        check(str(project / "data" / "other.json"))
