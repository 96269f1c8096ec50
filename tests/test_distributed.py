"""Data parallel on 2 CPU processes (torchrun, gloo): every question evaluated once, metrics as in 1 process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qa_core import train_setup
from qa_core.config import QAConfig
from qa_core.data import load_examples
from qa_core.distributed import DistContext, shard
from qa_core.evaluation import METRICS_FILE, PREDICTIONS_FILE, evaluate
from qa_core.features import build_features
from qa_core.modeling import load_model
from qa_core.precision import inference_copy
from qa_core.run_files import read_run_info
from tests.conftest import free_port, write_squad

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "ddp_driver.py"

LIGHTHOUSE = ("The lighthouse on Gull Point was built in 1874 by a crew of eleven masons from the harbour town of "
              "Kelby. Its lamp burned whale oil until 1911, when the keepers switched to kerosene. A storm in the "
              "winter of 1923 cracked the lantern glass, and the repairs took three months. The last keeper, Ada "
              "Brenner, left the tower in 1967 after the light was automated. Today the building houses a small "
              "museum about coastal shipping, and visitors can climb its ninety-two steps on summer weekends.")
ORCHARD = ("Marta planted a row of pear trees behind the school garden in spring. The trees needed two summers "
           "before they gave any fruit, and the first harvest filled only a single basket.")
FERRY = "The river ferry leaves the north pier every forty minutes, and the crossing takes about twelve minutes."

QUESTIONS = [  # 7 questions: an odd count, so uneven shards would show
    (LIGHTHOUSE, "When was the lighthouse on Gull Point built?", "1874"),
    (LIGHTHOUSE, "What fuel did the lamp burn before 1911?", "whale oil"),
    (LIGHTHOUSE, "Who was the last keeper of the light?", "Ada Brenner"),
    (LIGHTHOUSE, "How many steps does the tower have?", "ninety-two"),
    (ORCHARD, "What did Marta plant behind the school garden?", "a row of pear trees"),
    (ORCHARD, "How much did the first harvest fill?", "a single basket"),
    (FERRY, "How long does the crossing take?", "about twelve minutes"),
]

# Small windows so the long paragraph is split (several windows per question), and tiny batches so the two
# ranks run different numbers of evaluation batches.
OPTIONS = {"max_seq_length": 64, "doc_stride": 24, "max_query_length": 16, "per_device_train_batch_size": 2,
           "per_device_eval_batch_size": 2, "gradient_accumulation_steps": 2, "max_steps": 4, "save_steps": 2,
           "logging_steps": 1, "learning_rate": 1e-3, "warmup_ratio": 0.0}


def squad_file(path: Path, questions: list[tuple[str, str, str]] = QUESTIONS) -> Path:
    paragraphs: dict[str, list[dict]] = {}
    for n, (context, question, answer) in enumerate(questions):
        qa = {"id": f"q{n}", "question": question, "answers": [{"text": answer, "answer_start": context.index(answer)}]}
        paragraphs.setdefault(context, []).append(qa)
    return write_squad(path, [{"context": c, "qas": qas} for c, qas in paragraphs.items()])


def pythonpath() -> str:
    """The driver runs as a script, so it finds this checkout's qa_core through PYTHONPATH (or an install)."""
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


def run_torchrun(options: dict) -> None:
    """Train with 2 processes; a hang (a collective that only some ranks reach) fails at the timeout."""
    args = [part for name, value in options.items() for part in (f"--{name}", str(value))]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": pythonpath()}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(DRIVER), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


@pytest.fixture(scope="module")
def ddp_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    data = squad_file(root / "squad.json")
    run_torchrun({"model_name_or_path": tiny_model_dir, "train_file": data, "validation_file": data,
                  "output_dir": root / "run", **OPTIONS})
    return root


def test_the_data_exercises_uneven_shards(tokenizer, tmp_path: Path):
    examples = load_examples(str(squad_file(tmp_path / "squad.json"))).examples
    features = build_features(examples, tokenizer, OPTIONS["max_seq_length"], OPTIONS["doc_stride"],
                              OPTIONS["max_query_length"], training=False).features
    assert len(examples) % 2 == 1 and len(features) % 2 == 1
    assert len(features) > len(examples)  # some questions span several windows
    assert shard(list(range(5)), DistContext(1, 2)) == [1, 3]  # training shards are trimmed to equal length


def test_both_ranks_ran_and_kept_identical_weights(ddp_run: Path):
    reports = [json.loads((ddp_run / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    assert [r["status"] for r in reports] == ["finished", "finished"]
    assert reports[0]["step"] == reports[1]["step"] == OPTIONS["max_steps"]
    assert reports[0]["weights"] == reports[1]["weights"]  # gradients were all-reduced every step
    assert reports[0]["metrics"] == reports[1]["metrics"]


def test_only_rank_zero_writes(ddp_run: Path):
    reports = [json.loads((ddp_run / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[1]["writes"] == []
    assert any(PREDICTIONS_FILE in w for w in reports[0]["writes"])  # the audit hook does see writes


def test_every_question_predicted_once(ddp_run: Path):
    predictions = json.loads((ddp_run / "run" / PREDICTIONS_FILE).read_text())
    assert sorted(predictions) == sorted(f"q{n}" for n in range(len(QUESTIONS)))
    records = (ddp_run / "run" / "eval_records.jsonl").read_text().splitlines()
    assert len(records) == len(QUESTIONS)


def test_metrics_match_single_process_evaluation(ddp_run: Path):
    config = QAConfig(**{k: v for k, v in OPTIONS.items()})
    loaded = load_model(str(ddp_run / "run"))
    # in the precision the run evaluated in (bf16 on CPUs that do it natively), as `train.py evaluate` would
    model, bf16 = inference_copy(loaded.model, read_run_info(ddp_run / "run").config["bf16"], torch.device("cpu"))
    examples = load_examples(str(ddp_run / "squad.json")).examples
    features = build_features(examples, loaded.tokenizer, config.max_seq_length, config.doc_stride,
                              config.max_query_length, training=False).features
    single = evaluate(model, examples, features, config, bf16, batch_format=loaded.batch_format)
    assert json.loads((ddp_run / "run" / METRICS_FILE).read_text()) == single.metrics.to_dict()
    predictions = json.loads((ddp_run / "run" / PREDICTIONS_FILE).read_text())
    assert predictions == {k: p.text for k, p in single.predictions.items()}


def test_too_few_batches_for_the_processes_is_an_error(tiny_model_dir: Path, tmp_path: Path):
    """Trimmed to equal shares, 1 batch over 2 ranks is none each: an error, not an endless loop of empty epochs."""
    config = QAConfig(**{**OPTIONS, "per_device_train_batch_size": 64}, model_name_or_path=str(tiny_model_dir),
                      train_file=str(squad_file(tmp_path / "squad.json")), output_dir=str(tmp_path / "run"))
    with pytest.raises(ValueError, match="fewer batches than the 2 processes"):
        train_setup.prepare(config, DistContext(0, 2), device="cpu")  # rank 0 of 2, without a process group


def test_accelerate_launch_and_a_rank_without_evaluation_windows(tiny_model_dir: Path, tmp_path: Path):
    """`accelerate launch --multi_gpu` starts the processes through torchrun's machinery (RANK, WORLD_SIZE, ...;
    gloo without GPUs). One evaluation window for two ranks: rank 1 scores nothing, yet nothing hangs."""
    options = {"model_name_or_path": tiny_model_dir, "train_file": squad_file(tmp_path / "train.json"),
               "validation_file": squad_file(tmp_path / "one.json", QUESTIONS[-1:]), "output_dir": tmp_path / "run",
               **OPTIONS, "max_steps": 2, "gradient_accumulation_steps": 1}
    args = [part for name, value in options.items() for part in (f"--{name}", str(value))]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": pythonpath()}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), str(DRIVER), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["world_size"], r["status"]) for r in reports] == [(0, 2, "finished"), (1, 2, "finished")]
    assert list(json.loads((tmp_path / "run" / PREDICTIONS_FILE).read_text())) == ["q0"]
