"""qa_core.int8 against torchao's int8 dynamic-activation quantization on the Ask benchmark, in one run, as JSON.

    python -m bench.bench_int8 runs/protocol-baseline          # writes bench/results/int8.json

Both give every linear layer but the QA head int8 weights (one scale per output channel) and quantize its input
to int8 with one scale per token. Measured: latency of `answer_question` on the Ask benchmark's questions (the
variants interleaved question by question, so a busy machine slows them alike), each copy compiled as the app
compiles its own; EM/F1 and the share of answers equal to the fp32 model's on every dev question (eager copies).
torchao is not a dependency: install it beside torch (`pip install torchao==0.18.0`) to run this.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

from bench.bench_ask import DEV, WARMUP, pick_questions, summary

ROOT = Path(__file__).resolve().parent.parent
KEEP = "qa_outputs"  # the QA head stays in float in both variants


def torchao_copy(loaded):
    """torchao's Int8DynamicActivationInt8WeightConfig on every linear layer but the QA head."""
    import torch
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    model = copy.deepcopy(loaded.model).eval()
    quantize_(model, Int8DynamicActivationInt8WeightConfig(),
              filter_fn=lambda module, fqn: isinstance(module, torch.nn.Linear) and KEEP not in fqn)
    return replace(loaded, model=model)


def compile_or_eager(loaded) -> tuple:
    """The copy compiled and warmed up exactly as the app's ModelCache does it (qa_core.serving.compile_for_cpu)
    and its compile time; the eager copy and the error where compiling fails."""
    from qa_core.serving import compile_for_cpu

    started = time.perf_counter()
    try:
        return compile_for_cpu(loaded), {"seconds": round(time.perf_counter() - started, 1)}
    except Exception as err:  # a compiler failure is a result here, not a crash
        return loaded, {"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300],
                        "timed": "eager"}


def time_interleaved(variants: dict, questions: list[dict]) -> dict[str, dict]:
    """Per question, each variant once, in rotating order; returns latency summaries and answers per variant."""
    from qa_core.inference import answer_question

    names = list(variants)
    for q in questions[:WARMUP]:
        for name in names:
            answer_question(variants[name], q["question"], q["context"])
    seconds = {name: [] for name in names}
    answers = {name: [] for name in names}
    for i, q in enumerate(questions):
        for name in names[i % len(names):] + names[:i % len(names)]:
            started = time.perf_counter()
            answer = answer_question(variants[name], q["question"], q["context"]).prediction.text
            seconds[name].append(time.perf_counter() - started)
            answers[name].append(answer)
    return {name: {**summary(seconds[name]), "answers": answers[name]} for name in names}


def dev_scores(variants: dict, dev: Path, limit: int | None = None) -> dict[str, dict]:
    """EM/F1 on every dev question and the share of answers identical to the fp32 model's."""
    from qa_core.config import QAConfig
    from qa_core.data import load_examples
    from qa_core.evaluation import evaluate
    from qa_core.features import featurize

    config = QAConfig()
    examples = load_examples(str(dev), "validation", limit).examples
    features = featurize(examples, variants["fp32"].tokenizer, config, training=False).features
    texts, scores = {}, {}
    for name, loaded in variants.items():
        started = time.perf_counter()
        result = evaluate(loaded.model, examples, features, config)
        texts[name] = {k: p.text for k, p in result.predictions.items()}
        scores[name] = {"exact_match": round(result.metrics.exact_match, 2), "f1": round(result.metrics.f1, 2),
                        "eval_seconds": round(time.perf_counter() - started, 2)}
    for name in variants:
        same = sum(texts[name][k].strip() == texts["fp32"][k].strip() for k in texts["fp32"])
        scores[name]["same_answer_as_fp32"] = round(same / len(texts["fp32"]), 4)
    return {"questions": len(examples), **scores}


def save(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a fine-tuned model folder, e.g. runs/protocol-baseline")
    parser.add_argument("--dev", default=str(DEV))
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse_dev_scores", action="store_true",
                        help="keep all_dev_questions from --out (same model) and measure only the latency")
    parser.add_argument("--max_dev", type=int, default=None, help="score only the first N dev questions (smoke runs)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "int8.json"))
    args = parser.parse_args(argv)  # before torch and torchao load: --help answers without them
    from qa_core.runtime import configure_process

    configure_process()
    import torch
    import torchao

    from qa_core.int8 import native_int8_cpu
    from qa_core.modeling import load_model
    from qa_core.serving import int8_copy

    torch.set_num_threads(args.threads)
    fp32 = load_model(args.model)
    fp32.model.eval()
    report = {"model": args.model, "threads": args.threads, "batch": 1, "torch": torch.__version__,
              "torchao": torchao.__version__, "native_int8_cpu": native_int8_cpu(),
              "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}",
              "load_average_at_start": os.getloadavg()}  # the CPU may be shared: the variants are interleaved
    # Ours compiles first, as the app compiles it: torchao's quantize_ then applies its recommended inductor
    # settings to the process, for its own compile.
    eager, served, report["compile"] = {"fp32": fp32}, {"fp32": fp32}, {}
    for name, quantize in (("qa_core_int8", int8_copy), ("torchao_int8", torchao_copy)):
        eager[name] = quantize(fp32)
        served[name], report["compile"][name] = compile_or_eager(eager[name])
    if args.reuse_dev_scores and Path(args.out).exists():  # same model, same code: only the latency is re-run
        report["all_dev_questions"] = json.loads(Path(args.out).read_text(encoding="utf-8"))["all_dev_questions"]
    else:
        report["all_dev_questions"] = dev_scores(eager, Path(args.dev), args.max_dev)
    save(report, Path(args.out))
    questions = pick_questions(Path(args.dev), args.questions)
    latency = time_interleaved(served, questions)
    report["questions"] = len(questions)
    report["latency"] = {name: {k: round(v, 2) for k, v in result.items() if k != "answers"}
                         for name, result in latency.items()}
    report["same_answer_as_fp32_on_these_questions"] = {
        name: sum(a == b for a, b in zip(latency[name]["answers"], latency["fp32"]["answers"])) / len(questions)
        for name in served}
    report["load_average_at_end"] = os.getloadavg()
    save(report, Path(args.out))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
