"""Ask-path latency: the app's ModelCache vs. the question-answering pipeline of transformers 5.2, as JSON.

    python -m bench.bench_ask runs/bench-minilm              # both, 3 interleaved passes → bench/results/ask.json
    python -m bench.bench_ask runs/bench-minilm --no-reference

The reference runs in its own venv (bench/.venv-ref, made on first use with `pip install transformers==5.2.0
torch==2.13.0`), because 5.2 is the last release with that pipeline; both see the same model, questions and threads.
It runs as shipped, in the environment the bench was started in, and again without the tokenizer's thread pool,
as the app runs ours (runtime.configure_process(serving=True)). Each reference stays loaded in a process of its own
for the whole run, so that the paths can take turns every few questions: the VM's drift, which moves a whole pass of
one path from one minute to the next by more than the changes measured (bench/README.md), then touches all paths
alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.report import with_machine, write_report
from qa_core.run_files import model_folder

if TYPE_CHECKING:
    from qa_core.serving import ModelCache

ROOT = Path(__file__).resolve().parent.parent

DEV = ROOT.parent / "shared" / "squad" / "dev-v1.1-subset.json"
REF_VENV = ROOT / "bench" / ".venv-ref"
REF_PACKAGES = ("transformers==5.2.0", "torch==2.13.0")
WARMUP = 3
COMPILE_TIMEOUT_S = 600

# Runs inside the reference venv: the pipeline with its defaults (max_seq_len 384, doc_stride 128, top_k 1). It warms
# up, says so, then answers the question whose index each line of its input names, timed around the call alone.
REFERENCE = """
import json, sys, time, torch, transformers
from transformers import pipeline
model, questions, threads = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
torch.set_num_threads(threads)
qa = pipeline("question-answering", model=model, tokenizer=model, device=-1)
for q in questions[:%d]:
    qa(question=q["question"], context=q["context"])
print(json.dumps({"transformers": transformers.__version__, "torch": torch.__version__}), flush=True)
for line in sys.stdin:
    q = questions[int(line)]
    started = time.perf_counter()
    answer = qa(question=q["question"], context=q["context"])["answer"]
    print(json.dumps({"seconds": time.perf_counter() - started, "answer": answer}), flush=True)
""" % WARMUP
BLOCK = 10  # questions one path answers in a row: short enough for the VM's drift, long enough to keep the path warm


def pick_questions(path: Path, count: int, min_words: int = 90, max_words: int = 160) -> list[dict[str, str]]:
    """The first `count` dev questions whose context has about 125 words (between min_words and max_words)."""
    from qa_core.data import load_examples

    picked = [{"id": e.example_id, "question": e.question, "context": e.context, "golds": [a.text for a in e.answers]}
              for e in load_examples(str(path), "validation").examples
              if min_words <= len(e.context.split()) <= max_words]
    if len(picked) < count:
        raise ValueError(f"{path}: only {len(picked)} questions with contexts of {min_words}-{max_words} words")
    return picked[:count]


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"median_ms": 1000 * statistics.median(ordered), "p90_ms": 1000 * ordered[int(0.9 * (len(ordered) - 1))],
            "mean_ms": 1000 * statistics.fmean(ordered)}


def prepared_cache(model: str, threads: int, fast: bool) -> tuple[ModelCache, float]:
    """The app's ModelCache with `model` loaded and, with fast=True, its compiled int8 copy in place (on CPUs with
    int8 dot products), as the app serves it; and the seconds that took."""
    import torch

    from qa_core.serving import ModelCache

    torch.set_num_threads(threads)  # process-wide: the model thread runs with it too
    cache = ModelCache(size=1, fast=fast)
    started = time.perf_counter()
    cache.wait_until_warm(model, COMPILE_TIMEOUT_S)
    return cache, time.perf_counter() - started


async def timed_answer(cache: ModelCache, model: str, question: dict[str, str], exact: bool) -> tuple[float, str]:
    """The app's own path, ModelCache.answer_in_turn awaited as the web server does, timed around the call:
    tokenize, run every window, search spans (no plotting), the hand-off to the cache's model thread included.
    Seconds and answer text; exact=True answers from the fp32 model, else from what the app serves."""
    started = time.perf_counter()
    result = (await cache.answer_in_turn(model, question["question"], question["context"], exact))[0]
    return time.perf_counter() - started, result.prediction.text


def quality(answers: list[str], questions: list[dict]) -> dict[str, float]:
    """SQuAD EM/F1 of these answers on these questions, so speed never hides a loss of accuracy."""
    from qa_core.metrics import compute_metrics

    metrics = compute_metrics(dict(zip([q["id"] for q in questions], answers)),
                              {q["id"]: q["golds"] for q in questions})
    return {"exact_match": round(metrics.exact_match, 2), "f1": round(metrics.f1, 2)}


def dev_quality(model: str, dev: Path, threads: int, int8: bool = True) -> dict[str, dict[str, float]]:
    """EM/F1 on every dev question from the fp32 model and (int8=True) from its int8 copy (uncompiled: the same
    arithmetic), with the logit error the app checks the copy with before serving it (serving.int8_logit_error).
    Without native int8 the app serves no copy, and emulated int8 would take many times fp32's time."""
    import torch

    from qa_core.config import QAConfig
    from qa_core.data import load_examples
    from qa_core.evaluation import evaluate
    from qa_core.features import featurize
    from qa_core.modeling import load_model
    from qa_core.serving import int8_copy, int8_logit_error

    torch.set_num_threads(threads)
    loaded, config = load_model(model), QAConfig()
    examples = load_examples(str(dev), "validation").examples
    features = featurize(examples, loaded.tokenizer, config, training=False).features
    variants = {"fp32": loaded} | ({"int8": int8_copy(loaded)} if int8 else {})
    scores = {}
    for name, variant in variants.items():
        metrics = evaluate(variant.model, examples, features, config).metrics
        scores[name] = {"exact_match": round(metrics.exact_match, 2), "f1": round(metrics.f1, 2)}
    if int8:
        scores["int8_logit_error"] = round(int8_logit_error(loaded, variants["int8"]), 4)
    return {"questions": len(examples), **scores}


def same_answers(a: list[str], b: list[str]) -> float:
    return sum(x.strip() == y.strip() for x, y in zip(a, b)) / len(a)


def reference_python() -> Path:
    python = REF_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(REF_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REF_PACKAGES], check=True)
    return python


class Reference:
    """The pipeline loaded and warmed up in a process of its own (REFERENCE), with the environment `env`, answering
    one question at a time."""

    def __init__(self, model_folder: str, questions_file: str, threads: int, env: dict[str, str]) -> None:
        self._process = subprocess.Popen([str(reference_python()), "-c", REFERENCE, model_folder, questions_file,
                                          str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                         env=env)
        self.versions: dict[str, str] = self._reply()  # once warm

    def ask(self, index: int) -> tuple[float, str]:
        """Seconds and answer of question `index` of the questions file."""
        assert self._process.stdin is not None
        self._process.stdin.write(f"{index}\n")
        self._process.stdin.flush()
        reply = self._reply()
        return reply["seconds"], reply["answer"]

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=60)

    def _reply(self) -> dict:
        """Its next JSON line (a library may write other lines there first)."""
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"the reference process ended (exit code {self._process.wait()})")


def reference_environments(launched: dict[str, str]) -> dict[str, dict[str, str]]:
    """The pipeline as shipped (the environment the bench was started in), and with the setting the app makes
    (runtime.configure_process(serving=True)): no tokenizer thread pool."""
    return {"reference": launched, "reference_like_ours": {**launched, "TOKENIZERS_PARALLELISM": "false"}}


Timings = tuple[dict[str, list[float]], dict[str, list[str]]]  # each path's seconds, and its answer to each question


async def interleaved(cache: ModelCache, model: str, questions: list[dict[str, str]], paths: dict[str, bool],
                      references: dict[str, Reference], rounds: int) -> Timings:
    """Seconds of every path (ours: name -> exact; the references) on every question, `rounds` times, and each path's
    answers: BLOCK questions at a time, each block asked of every path in turn, the order rotating from one block to
    the next; each path answers a block's first question once untimed before the block (the paths it waited for
    left it idle, and their OpenMP workers may still spin)."""
    for question in questions[:WARMUP]:  # the references warm up as they start
        for exact in paths.values():
            await cache.answer_in_turn(model, question["question"], question["context"], exact)
    names = [*paths, *references]
    seconds: dict[str, list[float]] = {name: [] for name in names}
    answers: dict[str, list[str]] = {name: [""] * len(questions) for name in names}
    for block_index, begin in enumerate(range(0, len(questions) * rounds, BLOCK)):
        block = [index % len(questions) for index in range(begin, min(begin + BLOCK, len(questions) * rounds))]
        shift = block_index % len(names)
        for name in names[shift:] + names[:shift]:
            for timed, index in [(False, block[0])] + [(True, index) for index in block]:
                if name in paths:
                    taken, answers[name][index] = await timed_answer(cache, model, questions[index], paths[name])
                else:
                    taken, answers[name][index] = references[name].ask(index)
                if timed:
                    seconds[name].append(taken)
    return seconds, answers


def measure(args: argparse.Namespace, fast: bool, launched: dict[str, str]) -> dict:
    """Our Ask path (fp32, and the int8 copy where the app serves one) and the pipeline on the same questions
    (unless --no-reference), taking turns every BLOCK questions so that the machine's drift touches all alike; and
    the quality of ours on every dev question."""
    questions = pick_questions(Path(args.dev), args.questions)
    cache, prepare_seconds = prepared_cache(args.model, args.threads, fast)
    paths = {"ours_fp32": True} | ({"ours": False} if fast else {})  # name: exact (answer from the fp32 model)
    folder = str(model_folder(Path(args.model)))  # the pipeline takes a model folder; ours a run's, with settings
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
        json.dump(questions, out)
    environments = {} if args.no_reference else reference_environments(launched)
    references: dict[str, Reference] = {}
    try:
        for name, env in environments.items():
            references[name] = Reference(folder, out.name, args.threads, env)
        seconds, answers = asyncio.run(interleaved(cache, args.model, questions, paths, references, args.rounds))
    finally:
        for reference in references.values():
            reference.close()
        os.unlink(out.name)
    seconds.setdefault("ours", seconds["ours_fp32"])
    answers.setdefault("ours", answers["ours_fp32"])
    figures = {name: {**summary(seconds[name]), **quality(answers[name], questions)} for name in seconds}
    report = {"model": args.model, "questions": len(questions), "rounds": args.rounds, "threads": args.threads,
              "batch": 1, "order": f"{BLOCK} questions of every path in turn, rotating, after one untimed",
              "context_words_mean": statistics.fmean(len(q["context"].split()) for q in questions),
              "ours_path": "ModelCache.answer_in_turn, " + ("compiled int8 copy" if fast else "fp32 eager"),
              "prepare_seconds": round(prepare_seconds, 1),
              "served_model_class": type(cache.get(args.model).model).__name__,
              "ours": figures["ours"], "ours_fp32": figures["ours_fp32"],
              "same_answer_fast_vs_fp32": same_answers(answers["ours"], answers["ours_fp32"]),
              "all_dev_questions": dev_quality(args.model, Path(args.dev), args.threads, int8=fast)}
    if references:
        report.update(reference=figures["reference"] | references["reference"].versions,
                      reference_like_ours=figures["reference_like_ours"],
                      ratio_median_like_ours=figures["ours"]["median_ms"] / figures["reference_like_ours"]["median_ms"],
                      ratio_median=figures["ours"]["median_ms"] / figures["reference"]["median_ms"],
                      ratio_p90=figures["ours"]["p90_ms"] / figures["reference"]["p90_ms"],
                      same_answer=same_answers(answers["ours"], answers["reference"]))
    return report


def main(argv: list[str] | None = None) -> int:
    from qa_core.runtime import configure_process

    launched = dict(os.environ)  # the pipeline runs as shipped, in the environment the bench was started in
    configure_process(serving=True)  # ours as the app runs
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a fine-tuned model folder, e.g. runs/bench-minilm")
    parser.add_argument("--dev", default=str(DEV), help="SQuAD dev file to draw the questions from")
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3,
                        help="passes over the questions, the paths taking turns every few questions")
    parser.add_argument("--no-reference", action="store_true", help="measure only our Ask path")
    parser.add_argument("--no-fast", action="store_true", help="measure only the fp32 eager path")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ask.json"))
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    from qa_core.int8 import native_int8_cpu

    fast = native_int8_cpu() and not args.no_fast
    write_report(with_machine(lambda: measure(args, fast, launched)), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
