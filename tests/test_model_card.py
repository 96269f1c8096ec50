"""The model card: Hub metadata and the human part from run information; pushing fails clearly offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from qa_core.checkpoints import write_run_info
from qa_core.config import QAConfig
from qa_core.eval_settings import Evaluated
from qa_core.model_card import CardFacts, facts_from_run, hub_id, render_model_card, write_model_card
from qa_core.run_files import RunInfo
from tests.overfit_data import write_tiny_squad
from tests.tiny_runs import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def run_info(**config_changes) -> RunInfo:
    config = QAConfig(train_file="rajpurkar/squad", validation_file="/data/dev-v1.1-subset.json",
                      **config_changes).to_dict()
    return RunInfo("finished", config, step=644, total_steps=644, metrics={"exact_match": 45.2, "f1": 58.8},
                   data_fingerprint={"train": "abc123", "validation": "def456"}, train_seconds=690.7,
                   hardware="AMD EPYC, 2 cores (CPU)")


def test_hub_ids_are_told_apart_from_local_files():
    assert hub_id("embedded") == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_id("rajpurkar/squad:validation") == "rajpurkar/squad"
    assert hub_id("user/minilm-squad") == "user/minilm-squad"
    for local in ("sample", "dev.json", "./runs/x", "/abs/run", "runs/a/b", "train.jsonl", None):
        assert hub_id(local) is None


def test_card_metadata_is_what_the_hub_reads():
    facts = facts_from_run(run_info(), "user/minilm-squad", {"exact_match": 45.239, "f1": 58.831, "total": 473})
    card = ModelCard(render_model_card(facts))  # the Hub's own parser
    data = card.data.to_dict()
    assert data["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert data["datasets"] == ["rajpurkar/squad"]
    assert (data["pipeline_tag"], data["library_name"], data["license"]) == ("question-answering", "transformers",
                                                                              "apache-2.0")
    assert data["metrics"] == ["exact_match", "f1"]
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {"exact_match": 45.24, "f1": 58.83}
    assert {r.dataset_name for r in card.data.eval_results} == {"dev-v1.1-subset.json"}


def test_card_metadata_names_local_evaluation_data_by_its_file_name():
    """Found by trying a push: the metadata's dataset name and type were the absolute path of the machine that
    trained (/tmp/qa-try/small-v2.json); a local file is named by its file name (its fingerprint identifies it), a
    hub data set keeps its id."""
    facts = facts_from_run(run_info(), "user/minilm-squad", {"exact_match": 45.2, "f1": 58.8})
    card = ModelCard(render_model_card(facts))
    assert {(r.dataset_name, r.dataset_type) for r in card.data.eval_results} == {
        ("dev-v1.1-subset.json", "dev-v1.1-subset.json")}
    assert "/data/" not in card.content.split("---")[1] and "data fingerprint (validation): `def456`" in card.content
    hub = ModelCard(render_model_card(facts_from_run(run_info(), "m", {"exact_match": 1.0, "f1": 2.0},
                                                     evaluated=Evaluated("rajpurkar/squad:validation"))))
    assert {(r.dataset_name, r.dataset_type) for r in hub.data.eval_results} == {
        ("rajpurkar/squad:validation", "rajpurkar/squad")}


def test_card_text_tells_how_it_was_trained_and_how_well_it_answers():
    facts = facts_from_run(run_info(learning_rate=3e-5), "user/minilm-squad", {"exact_match": 45.2, "f1": 58.8,
                                                                                "total": 473})
    text = render_model_card(facts)
    # a local file by its name, in the table too: its path is of the machine that trained, and push_run uploads it
    assert "/data/" not in text
    for expected in ("# user/minilm-squad", "| dev-v1.1-subset.json | 473 | 45.20 | 58.80 |",
                     "| learning_rate | 3e-05 |", "| per_device_train_batch_size | 16 |", "| seed | 42 |",
                     "data fingerprint (train): `abc123`", "optimizer steps: 644", "training time: 691 s",
                     "hardware: AMD EPYC, 2 cores (CPU)", 'load_model("user/minilm-squad")'):
        assert expected in text, expected


def test_a_card_without_evaluation_or_hub_base_still_renders():
    facts = CardFacts("local-run", "/models/my-bert", "sample", {"seed": 1})
    text = render_model_card(facts)
    data = ModelCard(text).data.to_dict()
    assert "base_model" not in data and "datasets" not in data and "model-index" not in data
    assert "Not evaluated." in text and "training time: not recorded" in text


def test_v2_metric_names_are_read_too():
    info = run_info(version_2_with_negative=True)
    facts = facts_from_run(info, "m", {"exact": 60.0, "f1": 65.5, "total": 10, "HasAns_exact": 50.0})
    score = facts.evaluations[0]
    assert (score.data, score.exact_match, score.f1, score.questions) == ("/data/dev-v1.1-subset.json", 60.0, 65.5, 10)


def test_a_squad_v2_card_says_so_with_its_slices_and_threshold():
    """Scores over answerable and unanswerable questions at a null threshold are not SQuAD v1.1 figures."""
    metrics = {"exact_match": 55.0, "f1": 56.5, "exact": 55.0, "total": 40, "HasAns_exact": 40.0,
               "HasAns_f1": 43.4, "HasAns_total": 17, "NoAns_exact": 66.1, "NoAns_f1": 66.1, "NoAns_total": 23,
               "best_exact": 60.0, "best_exact_thresh": -0.11, "best_f1": 61.2, "best_f1_thresh": -0.11}
    card = render_model_card(facts_from_run(run_info(version_2_with_negative=True), "m", metrics))
    assert "SQuAD v1.1 exact" not in card and "SQuAD v2.0" in card
    assert "| 40 | 55.00 | 56.50 | 40.00 / 43.40 (17) | 66.10 / 66.10 (23) | 61.20 at -0.11 |" in card
    assert "| version_2_with_negative | True |" in card


def test_the_figures_not_the_runs_config_make_a_card_v1_or_v2_and_it_names_the_evaluated_data():
    """Found by a tester: a v1.1 run evaluated as SQuAD 2.0 got a v1.1 card of v2 figures, with training's
    validation fingerprint beside data it was not scored on."""
    v2 = {"exact_match": 55.0, "f1": 56.5, "exact": 55.0, "total": 40, "HasAns_exact": 40.0, "HasAns_f1": 43.4,
          "HasAns_total": 17, "NoAns_exact": 66.1, "NoAns_f1": 66.1, "NoAns_total": 23}
    card = render_model_card(facts_from_run(run_info(), "m", v2, evaluated=Evaluated("/d/dev-v2.json", "f00d", -1.5)))
    assert "Official SQuAD v2.0" in card and "at the null odds threshold -1.5 (null_score_diff_threshold)" in card
    assert "| dev-v2.json | 40 | 55.00 | 56.50 | 40.00 / 43.40 (17) | 66.10 / 66.10 (23) | - |" in card
    assert "data fingerprint (validation): `f00d`" in card and "def456" not in card and "(train): `abc123`" in card
    assert "null_score_diff_threshold |" not in card  # a hyperparameter of v2 training only
    unknown = render_model_card(facts_from_run(run_info(), "m", v2, evaluated=Evaluated("/d/dev-v2.json")))
    assert "(validation)" not in unknown and "(train): `abc123`" in unknown
    v1 = render_model_card(facts_from_run(run_info(version_2_with_negative=True), "m", {"exact_match": 5.0, "f1": 6.0}))
    assert "Official SQuAD v1.1" in v1 and "SQuAD v2.0" not in v1 and "(validation): `def456`" in v1


def test_write_model_card_reads_the_run_folder(tmp_path: Path):
    write_run_info(tmp_path, run_info())
    (tmp_path / "eval_metrics.json").write_text(json.dumps({"exact_match": 50.0, "f1": 60.0}))
    path = write_model_card(tmp_path, "user/x")
    assert path.name == "README.md"
    assert ModelCard.load(path).data.to_dict()["model-index"][0]["name"] == "user/x"


def test_a_card_says_when_a_run_trained_on_part_of_its_file_and_takes_a_str_folder(tmp_path: Path):
    """Found by trying the library: a run on the first 100 questions read as trained on the whole file, and
    write_model_card("runs/x") failed with a TypeError."""
    write_run_info(tmp_path, run_info(max_train_samples=100))
    card = write_model_card(str(tmp_path), "user/x").read_text()
    assert "| max_train_samples | 100 |" in card
    write_run_info(tmp_path, run_info())
    assert "max_train_samples" not in write_model_card(str(tmp_path), "user/x").read_text()


PUSH = "import sys; from qa_core.model_card import push_run; push_run(sys.argv[1], 'user/x')"


@pytest.mark.parametrize("offline", [True, False])
def test_push_fails_with_one_clear_line_without_contacting_a_host(tmp_path: Path, offline: bool):
    """Offline mode, and a machine without a Hub token: refused before any request is made."""
    write_run_info(tmp_path, run_info())
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf-home"), PYTHONPATH=str(ROOT))  # no stored token
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run([sys.executable, "-c", PUSH, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    expected = "HF_HUB_OFFLINE is set" if offline else "no Hugging Face token"
    assert last.startswith("qa_core.model_card.HubError: --push_to_hub: ") and expected in last, done.stderr
    assert not (tmp_path / "README.md").exists()


def loaded_by_the_card(card: str) -> str:
    return re.search(r'load_model\("([^"]*)"\)', card).group(1)


def test_a_local_card_names_the_run_folder_as_training_was_given_it(tiny_model_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    """It said load_model("my-run"), which loads only from inside runs/ (elsewhere it is looked up on the Hub)."""
    from qa_core.modeling import load_model
    from qa_core.training import train

    monkeypatch.chdir(tmp_path)
    train(tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), Path("runs/my-run"), max_steps=1))
    card = (tmp_path / "runs" / "my-run" / "model" / "README.md").read_text()
    assert "# my-run" in card and loaded_by_the_card(card) == "runs/my-run"
    assert load_model(loaded_by_the_card(card)).source == str(Path("runs/my-run/model"))


def test_a_pushed_card_names_the_hub_repository_with_its_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Pushed without --hub_model_id, the repository is created under the user's name: 'my-run' alone loads
    nothing from the Hub."""
    import huggingface_hub
    from huggingface_hub import RepoUrl

    run = tmp_path / "my-run"
    write_run_info(run, run_info())
    uploaded = {}
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "create_repo",
                        lambda repo_id, **_: RepoUrl(f"https://huggingface.co/ann/{repo_id}"))
    monkeypatch.setattr(huggingface_hub, "upload_folder",
                        lambda folder_path, **kwargs: uploaded.update(kwargs, card=(folder_path / "README.md")
                                                                      .read_text()))
    from qa_core.model_card import push_run

    assert push_run(run) == "https://huggingface.co/ann/my-run"
    assert uploaded["repo_id"] == "ann/my-run" and loaded_by_the_card(uploaded["card"]) == "ann/my-run"
