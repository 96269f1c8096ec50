"""Ask-path latency: the app's ModelCache.answer vs. the question-answering pipeline of transformers 5.2, as JSON.

    python -m bench.bench_ask runs/bench-minilm              # both, writes bench/results/ask.json
    python -m bench.bench_ask runs/bench-minilm --no-reference

The reference runs in its own venv (bench/.venv-ref, made on first use with `pip install transformers==5.2.0
torch==2.13.0`), because 5.2 is the last release with that pipeline; both see the same model, questions and threads.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEV = ROOT.parent / "shared" / "squad" / "dev-v1.1-subset.json"
REF_VENV = ROOT / "bench" / ".venv-ref"
REF_PACKAGES = ("transformers==5.2.0", "torch==2.13.0")
WARMUP = 3
COMPILE_TIMEOUT_S = 600

# Runs inside the reference venv: the pipeline with its defaults (max_seq_len 384, doc_stride 128, top_k 1).
REFERENCE = """
import json, sys, time, torch, transformers
from transformers import pipeline
model, questions, threads = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
torch.set_num_threads(threads)
qa = pipeline("question-answering", model=model, tokenizer=model, device=-1)
for q in questions[:%d]:
    qa(question=q["question"], context=q["context"])
times, answers = [], []
for q in questions:
    started = time.perf_counter()
    answers.append(qa(question=q["question"], context=q["context"])["answer"])
    times.append(time.perf_counter() - started)
print(json.dumps({"seconds": times, "answers": answers, "transformers": transformers.__version__,
                  "torch": torch.__version__}))
""" % WARMUP


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


def measure_ours(model: str, questions: list[dict[str, str]], threads: int, fast: bool) -> dict:
    """The app's own path, ModelCache.answer, timed around each call: tokenize, run every window, search spans
    (no plotting), including the hand-off to the cache's model thread.

    fast=True waits, as the app does, for the cache's compiled int8 copy (on CPUs with int8 dot products).
    """
    import torch

    from qa_core.serving import ModelCache

    torch.set_num_threads(threads)  # process-wide: the model thread runs with it too
    cache = ModelCache(size=1, fast=fast)
    started = time.perf_counter()
    cache.wait_until_warm(model, COMPILE_TIMEOUT_S)
    prepare_seconds = time.perf_counter() - started
    for q in questions[:WARMUP]:
        cache.answer(model, q["question"], q["context"])
    seconds, answers = [], []
    for q in questions:
        started = time.perf_counter()
        answers.append(cache.answer(model, q["question"], q["context"])[0].prediction.text)
        seconds.append(time.perf_counter() - started)
    served = type(cache.get(model).model).__name__
    return {**summary(seconds), "prepare_seconds": round(prepare_seconds, 1), "served_model_class": served,
            "answers": answers, **quality(answers, questions)}


def quality(answers: list[str], questions: list[dict]) -> dict[str, float]:
    """SQuAD EM/F1 of these answers on these questions, so speed never hides a loss of accuracy."""
    from qa_core.metrics import compute_metrics

    metrics = compute_metrics(dict(zip([q["id"] for q in questions], answers)),
                              {q["id"]: q["golds"] for q in questions})
    return {"exact_match": round(metrics.exact_match, 2), "f1": round(metrics.f1, 2)}


def dev_quality(model: str, dev: Path, threads: int) -> dict[str, dict[str, float]]:
    """EM/F1 on every dev question from the fp32 model and from its int8 copy (uncompiled: the same arithmetic),
    and the logit error the app checks the copy with before serving it (serving.int8_logit_error)."""
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
    scores, int8 = {}, int8_copy(loaded)
    for name, variant in (("fp32", loaded), ("int8", int8)):
        metrics = evaluate(variant.model, examples, features, config).metrics
        scores[name] = {"exact_match": round(metrics.exact_match, 2), "f1": round(metrics.f1, 2)}
    return {"questions": len(examples), **scores, "int8_logit_error": round(int8_logit_error(loaded, int8), 4)}


def same_answers(a: list[str], b: list[str]) -> float:
    return sum(x.strip() == y.strip() for x, y in zip(a, b)) / len(a)


def reference_python() -> Path:
    python = REF_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(REF_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REF_PACKAGES], check=True)
    return python


def measure_reference(model: str, questions: list[dict[str, str]], threads: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
        json.dump(questions, out)
    done = subprocess.run([str(reference_python()), "-c", REFERENCE, model, out.name, str(threads)],
                          check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**summary(result["seconds"]), "answers": result["answers"], "transformers": result["transformers"],
            "torch": result["torch"]}


def main(argv: list[str] | None = None) -> int:
    from qa_core.runtime import configure_process

    configure_process()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a fine-tuned model folder, e.g. runs/bench-minilm")
    parser.add_argument("--dev", default=str(DEV), help="SQuAD dev file to draw the questions from")
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-reference", action="store_true", help="measure only our Ask path")
    parser.add_argument("--no-fast", action="store_true", help="measure only the fp32 eager path")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ask.json"))
    args = parser.parse_args(argv)
    questions = pick_questions(Path(args.dev), args.questions)
    from qa_core.int8 import native_int8_cpu

    fast = native_int8_cpu() and not args.no_fast
    ours_fp32 = measure_ours(args.model, questions, args.threads, fast=False)
    ours = measure_ours(args.model, questions, args.threads, fast=True) if fast else ours_fp32
    report = {"model": args.model, "questions": len(questions), "threads": args.threads, "batch": 1,
              "context_words_mean": statistics.fmean(len(q["context"].split()) for q in questions),
              "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}",
              "ours_path": "ModelCache.answer, compiled int8 copy" if fast else "ModelCache.answer, fp32 eager",
              "ours": {k: v for k, v in ours.items() if k != "answers"},
              "ours_fp32": {k: v for k, v in ours_fp32.items() if k != "answers"},
              "same_answer_fast_vs_fp32": same_answers(ours["answers"], ours_fp32["answers"]),
              "all_dev_questions": dev_quality(args.model, Path(args.dev), args.threads)}
    if not args.no_reference:
        from qa_core.run_files import model_folder

        # the pipeline takes a model folder; ours takes a run folder too (and reads the run's settings)
        reference = measure_reference(str(model_folder(Path(args.model))), questions, args.threads)
        report.update(reference={k: v for k, v in reference.items() if k != "answers"},
                      reference_quality=quality(reference["answers"], questions),
                      ratio_median=ours["median_ms"] / reference["median_ms"],
                      ratio_p90=ours["p90_ms"] / reference["p90_ms"],
                      same_answer=same_answers(ours["answers"], reference["answers"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
