"""Evaluating a model: the official SQuAD 2.0 files and best threshold, data it cannot score, and what an evaluation
may write over in a run folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qa_core.config import QAConfig
from qa_core.data import Answer, Example
from qa_core.evaluation import (BEST_SPANS_FILE, METRICS_FILE, NULL_ODDS_FILE, PREDICTIONS_FILE, run_evaluation,
                                squad_v2_metrics)
from qa_core.metrics import compute_metrics_v2
from qa_core.run_settings import config_for_model
from qa_core.training import train
from tests.overfit_data import write_tiny_squad
from tests.tiny_runs import tiny_config
from tests.v2_data import GOLDS, NULL_ODDS, QUESTIONS, examples, official, predictions_from_odds, write_v2

WINDOWS = dict(max_seq_length=64, doc_stride=16, max_query_length=16)


def test_best_threshold_is_searched_over_the_best_spans() -> None:
    predictions = predictions_from_odds()
    metrics = squad_v2_metrics(examples(), predictions, 0.0)
    best = {k: p.alternatives[0].text for k, p in predictions.items()}
    searched = compute_metrics_v2(best, GOLDS, NULL_ODDS)
    at_zero = compute_metrics_v2({k: p.text for k, p in predictions.items()}, GOLDS, NULL_ODDS, 0.0)
    assert metrics.squad_v2.best_f1 == searched.best_f1 and metrics.squad_v2.exact == at_zero.exact
    assert metrics.to_dict()["exact_match"] == at_zero.exact


def test_evaluate_writes_official_v2_files_and_answering_uses_the_best_threshold(tiny_model_dir: Path,
                                                                                 tmp_path: Path) -> None:
    data = write_v2(tmp_path / "dev.json")
    out = tmp_path / "eval"
    config = QAConfig(model_name_or_path=str(tiny_model_dir), validation_file=str(data), output_dir=str(out),
                      version_2_with_negative=True, null_score_diff_threshold=0.25)
    result = run_evaluation(config, device="cpu")
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["total"] == len(QUESTIONS) and metrics["NoAns_total"] == 3 and "best_f1_thresh" in metrics
    predictions = json.loads((out / PREDICTIONS_FILE).read_text())
    odds = json.loads((out / NULL_ODDS_FILE).read_text())
    assert set(predictions) == set(odds) == set(GOLDS)
    assert all((predictions[k] == "") == (odds[k] > 0.25) for k in GOLDS)
    at_threshold = official(data, predictions, odds, 0.25, tmp_path)
    searched = official(data, json.loads((out / BEST_SPANS_FILE).read_text()), odds, 0.25, tmp_path)
    assert {k: metrics[k] for k in at_threshold if not k.startswith("best")} == {
        k: v for k, v in at_threshold.items() if not k.startswith("best")}
    assert {k: metrics[k] for k in searched if k.startswith("best")} == {
        k: v for k, v in searched.items() if k.startswith("best")}
    assert len(result.records) == len(QUESTIONS) and all(r.null_odds is not None for r in result.records)

    # the evaluated model folder answers with the threshold its evaluation found
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        if (tiny_model_dir / name).exists():
            (out / name).write_bytes((tiny_model_dir / name).read_bytes())
    answering = config_for_model(str(out))
    assert answering.version_2_with_negative and answering.null_score_diff_threshold == metrics["best_f1_thresh"]
    assert config_for_model(str(tiny_model_dir)) == QAConfig()


def test_unanswerable_questions_left_out_of_a_v1_evaluation_are_warned_about(caplog) -> None:
    """Evaluating SQuAD 2.0 data without --version_2_with_negative scores only its answerable questions: say so."""
    from qa_core.evaluation import check_scorable

    examples = [Example("a", "Who?", "Mara ran.", (Answer("Mara", 0),)), Example("b", "Why?", "Mara ran.", ())]
    with caplog.at_level("WARNING"):
        check_scorable(examples, QAConfig(), "dev-v2.json")
    assert "dev-v2.json: 1 of its 2 questions have no answer; a SQuAD v1.1 evaluation leaves them out of the " \
           "scores (--version_2_with_negative scores them)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        check_scorable(examples, QAConfig(version_2_with_negative=True), "dev-v2.json")
        check_scorable(examples[:1], QAConfig(), "dev-v1.json")
    assert not caplog.text


def test_evaluating_into_a_run_folder_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_tiny_squad(tmp_path / "d.json")
    run = tmp_path / "run"
    train(tiny_config(tiny_model_dir, data, run, max_steps=1))
    metrics = (run / "eval_metrics.json").read_text()
    config = QAConfig(model_name_or_path=str(tiny_model_dir), validation_file=str(data), output_dir=str(run),
                      max_seq_length=64, doc_stride=16, max_query_length=16)
    with pytest.raises(ValueError, match=f"{run} already holds .*run.json.*--overwrite_output_dir"):
        run_evaluation(config)
    assert (run / "eval_metrics.json").read_text() == metrics
    run_evaluation(config.replace(overwrite_output_dir=True))  # replaces the run's records, keeps its model
    assert not (run / "run.json").exists() and (run / "model" / "model.safetensors").exists()
    assert (run / "eval_metrics.json").exists()


@pytest.fixture(scope="module")
def trained_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-step run of the tiny BERT, evaluated on its own data."""
    folder = tmp_path_factory.mktemp("trained")
    data = write_tiny_squad(folder / "d.json")
    train(QAConfig(model_name_or_path=str(tiny_model_dir), train_file=str(data), validation_file=str(data),
                   output_dir=str(folder / "run"), max_steps=2, per_device_train_batch_size=2, **WINDOWS))
    return folder / "run"


def _snapshot(run: Path) -> dict[str, bytes]:
    """The run's own records and model, which evaluating it again must leave as they are."""
    kept = [run / "run.json", run / "history.jsonl", *(run / "checkpoint").iterdir(),
            run / "model" / "model.safetensors", run / "model" / "config.json"]
    return {str(path): path.read_bytes() for path in kept}


@pytest.mark.parametrize("model, overwrite", [("run", False), ("run/model", False), ("run", True)])
def test_evaluating_a_run_into_its_own_folder_refreshes_only_its_evaluation(
        trained_run: Path, tmp_path: Path, model: str, overwrite: bool) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = _snapshot(run)
    (run / "eval_metrics.json").write_text('{"exact_match": -1, "f1": -1}')  # stale scores, to be refreshed
    one_question = tmp_path / "one.json"
    data = json.loads((trained_run.parent / "d.json").read_text())
    data["data"][0]["paragraphs"] = data["data"][0]["paragraphs"][:1]
    one_question.write_text(json.dumps(data))
    run_evaluation(QAConfig(model_name_or_path=str(tmp_path / model), validation_file=str(one_question),
                            output_dir=str(run), overwrite_output_dir=overwrite, **WINDOWS))
    assert _snapshot(run) == before
    metrics = json.loads((run / "eval_metrics.json").read_text())
    assert metrics["exact_match"] >= 0 and len((run / "eval_records.jsonl").read_text().splitlines()) == 2
    assert "one.json" in (run / "model" / "README.md").read_text()  # the card states the new scores


def test_a_v1_run_evaluated_as_squad_v2_into_its_folder_gets_a_v2_card(trained_run: Path, tmp_path: Path) -> None:
    """Found by a tester: a SQuAD v1.1 run evaluated with --version_2_with_negative into its own folder got a card
    calling evaluate-v2.0's figures 'SQuAD v1.1 exact match and F1', with the training's validation fingerprint;
    a SQuAD 2.0 card and the evaluated data's fingerprint describe the evaluation that gave its figures. The card
    push_run writes from the run folder alone paired these figures with training's validation data, fingerprint
    and threshold: the evaluation now keeps what it scored (eval_settings.json), and that card says the same."""
    from huggingface_hub import ModelCard

    from qa_core.data import fingerprint, load_examples
    from qa_core.model_card import write_model_card
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    trained_on = json.loads((run / "run.json").read_text())["data_fingerprint"]["validation"]
    data = write_v2(tmp_path / "dev-v2.json")
    run_evaluation(QAConfig(model_name_or_path=str(run), validation_file=str(data), output_dir=str(run),
                            version_2_with_negative=True, null_score_diff_threshold=0.25, **WINDOWS))
    card = (run / "model" / "README.md").read_text()
    assert "SQuAD v1.1" not in card and "Official SQuAD v2.0" in card
    metrics = json.loads((run / METRICS_FILE).read_text())
    assert (f"| {Path(data).name} | {len(QUESTIONS)} | {metrics['exact']:.2f} | {metrics['f1']:.2f} | "
            f"{metrics['HasAns_exact']:.2f} / {metrics['HasAns_f1']:.2f} (5) |") in card
    assert "null odds threshold 0.25" in card
    evaluated = fingerprint(load_examples(str(data), "validation").examples)
    assert evaluated != trained_on and f"data fingerprint (validation): `{evaluated}`" in card
    assert f"(validation): `{trained_on}`" not in card
    assert {r.metric_type for r in ModelCard(card).data.eval_results} == {"exact_match", "f1"}  # as a v2 run's card
    pushed = write_model_card(run, "user/repo").read_text()  # what push_run uploads, without the Hub
    assert pushed.split("## Evaluation")[1] == card.split("## Evaluation")[1]  # figures, data, fingerprint, threshold
    assert {r.dataset_name for r in ModelCard(pushed).data.eval_results} == {"dev-v2.json"}

    run_evaluation(QAConfig(model_name_or_path=str(run), validation_file=str(trained_run.parent / "d.json"),
                            output_dir=str(run), **WINDOWS))  # evaluated again as SQuAD v1.1: a v1.1 card
    card = (run / "model" / "README.md").read_text()
    assert "Official SQuAD v1.1" in card and "SQuAD v2.0" not in card and f"(validation): `{trained_on}`" in card
    assert write_model_card(run, "user/repo").read_text().split("## Evaluation")[1] == card.split("## Evaluation")[1]


def test_train_py_evaluate_shows_its_windows_scored_as_it_goes(tiny_model_dir: Path, tmp_path: Path,
                                                               capfd: pytest.CaptureFixture) -> None:
    """Found by a tester: `train.py evaluate` said nothing for minutes on 950 questions. run_evaluation reports the
    windows scored after each batch; the command line draws them as a bar, as it draws training's steps."""
    from qa_core import cli as qa_cli

    data = write_tiny_squad(tmp_path / "d.json")  # 5 questions of one window each
    reports: list[tuple[int, int]] = []
    config = QAConfig(model_name_or_path=str(tiny_model_dir), validation_file=str(data),
                      output_dir=str(tmp_path / "eval"), per_device_eval_batch_size=2, **WINDOWS)
    run_evaluation(config, progress=lambda done, total: reports.append((done, total)))
    assert reports == [(2, 5), (4, 5), (5, 5)]
    assert qa_cli.main(["evaluate", "--model_name_or_path", str(tiny_model_dir), "--validation_file", str(data),
                        "--output_dir", str(tmp_path / "cli"), "--per_device_eval_batch_size", "2",
                        *[f"--{name}={value}" for name, value in WINDOWS.items()]]) == 0
    assert "5/5" in capfd.readouterr().err


def test_every_evaluation_keeps_what_it_used_and_older_folders_read_as_before(trained_run: Path, tmp_path: Path,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    """Training's evaluations write eval_settings.json too (into the checkpoint, published with the other eval
    files), so that a later evaluation's never sits beside other records; a folder without it, or with one that
    does not read, is read as before (None: its readers take the run's config)."""
    from qa_core.eval_settings import WINDOW_SETTINGS, Evaluated, read_evaluated, write_evaluated
    from qa_core.run_files import EVAL_SETTINGS_FILE

    info = json.loads((trained_run / "run.json").read_text())
    used = read_evaluated(trained_run)
    assert used == Evaluated(info["config"]["validation_file"], info["data_fingerprint"]["validation"], None,
                             {k: info["config"][k] for k in WINDOW_SETTINGS})
    assert {k: used.window_settings[k] for k in WINDOWS} == WINDOWS
    assert read_evaluated(trained_run / "checkpoint") == used
    assert read_evaluated(tmp_path) is None
    write_evaluated(tmp_path, Evaluated("dev.json", None, -1.5, {"doc_stride": 8}))
    assert read_evaluated(tmp_path) == Evaluated("dev.json", None, -1.5, {"doc_stride": 8})
    for broken in ("not json", "[]", '{"validation_file": "d", "doc_stride": "8"}',
                   '{"validation_file": "d", "null_score_diff_threshold": true}'):
        (tmp_path / EVAL_SETTINGS_FILE).write_text(broken)
        with caplog.at_level("WARNING"):
            assert read_evaluated(tmp_path) is None
        assert f"{EVAL_SETTINGS_FILE}: unreadable" in caplog.text
        caplog.clear()


def test_a_run_evaluated_into_its_folder_is_held_against_a_trainer(trained_run: Path, tmp_path: Path) -> None:
    """Found by a resume audit: `train.py evaluate --output_dir RUN` checked the training lock once, at its start;
    a resume started meanwhile trained on, and the evaluation then moved its older files (and model card) over
    the resumed run's. The evaluation now holds the run while it works, so that trainer is refused."""
    from qa_core.run_files import RunRefused
    from qa_core.run_lock import being_trained, training_lock

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    held: list[bool] = []

    def meanwhile(done: int, total: int) -> None:
        held.append(being_trained(run))
        with pytest.raises(RunRefused, match="another process"), training_lock(run):
            pass

    run_evaluation(QAConfig(model_name_or_path=str(run), validation_file="sample", output_dir=str(run),
                            max_eval_samples=2, **WINDOWS), progress=meanwhile)
    assert held and all(held) and not being_trained(run)
