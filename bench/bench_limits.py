"""The measurements behind the server's limits, as JSON: answer time by context size, memory of training data.

    python -m bench.bench_limits answer              # seconds per answer by characters and windows
    python -m bench.bench_limits data FILE 10000     # peak RSS of reading FILE and windowing 10,000 questions
    python -m bench.bench_limits make FILE           # FILE: the shared training subset repeated to just under 50 MB

Each part runs in a fresh process (peak RSS is per process) and merges its figures into bench/results/limits.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "bench" / "results" / "limits.json"
QUESTION = "What did the keeper wind?"
TEXTS = {"english": "The keeper wound the clockwork every night before the storm. ",
         "chinese": "灯塔看守人每天晚上都给钟表上弦。"}


def peak_rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def answer_times(threads: int) -> list[dict]:
    """Seconds of one answer (embedded model, fp32, as the app answers without int8) by context length."""
    import torch

    from qa_core.inference import answer_question
    from qa_core.modeling import load_model

    torch.set_num_threads(threads)
    loaded = load_model("embedded")
    answer_question(loaded, QUESTION, TEXTS["english"] * 10)  # warm-up
    rows = []
    for name, text in TEXTS.items():
        for chars in (2_000, 5_000, 10_000, 20_000):
            context = (text * (chars // len(text) + 1))[:chars]
            started = time.perf_counter()
            windows = answer_question(loaded, QUESTION, context).windows
            rows.append({"text": name, "chars": chars, "windows": windows,
                         "seconds": round(time.perf_counter() - started, 3)})
            print(rows[-1], flush=True)
    return rows


def data_memory(path: Path, questions: int) -> dict:
    """Peak RSS after reading a whole data file, then after windowing its first `questions` for training."""
    from transformers import AutoTokenizer

    from qa_core.config import QAConfig
    from qa_core.data import load_examples
    from qa_core.features import featurize
    from qa_core.modeling import embedded_model_path

    started = time.perf_counter()
    examples = load_examples(str(path)).examples
    result = {"file_mb": round(path.stat().st_size / 1e6, 1), "questions_in_file": len(examples),
              "read_s": round(time.perf_counter() - started, 1), "peak_rss_mb_after_reading": peak_rss_mb()}
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path())
    features = featurize(examples[:questions], tokenizer, QAConfig(), training=True).features
    return {**result, "questions_windowed": questions, "windows": len(features),
            "peak_rss_mb_after_windowing": peak_rss_mb()}


def make_data(path: Path, copies: int = 38) -> None:
    """The shared v1.1 training subset `copies` times over, each copy's questions with new ids (38: 49 MB)."""
    subset = json.loads((ROOT.parent / "shared" / "squad" / "train-v1.1-subset.json").read_text(encoding="utf-8"))
    articles = []
    for copy in range(copies):
        for article in subset["data"]:
            paragraphs = [{**p, "qas": [{**qa, "id": f"{qa['id']}-{copy}"} for qa in p["qas"]]}
                          for p in article["paragraphs"]]
            articles.append({**article, "paragraphs": paragraphs})
    path.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")


def merge(key: str, value: object) -> None:
    results = json.loads(OUTPUT.read_text(encoding="utf-8")) if OUTPUT.exists() else {}
    results[key] = value
    results.setdefault("conditions", {})[key] = {"cpus": os.cpu_count(), "load_average": os.getloadavg(),
                                                 "date": time.strftime("%Y-%m-%d")}
    OUTPUT.write_text(json.dumps(results, indent=1), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("answer", "data", "make"))
    parser.add_argument("file", nargs="?", type=Path, help="data, make: a SQuAD JSON file")
    parser.add_argument("questions", nargs="?", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from qa_core.runtime import configure_process

    configure_process()
    if args.part == "make":
        return make_data(args.file)
    if args.part == "answer":
        merge("answer_seconds", answer_times(args.threads))
    else:
        merge(f"training_data_{args.questions}", data_memory(args.file, args.questions))


if __name__ == "__main__":
    main()
