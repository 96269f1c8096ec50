"""Load: N visitors asking at once through gradio_client against `python app.py` on localhost, as JSON.

    python -m bench.bench_load                          # 10 and 50 askers, writes bench/results/load.json
    python -m bench.bench_load --model runs/minilm --askers 10 50 100

The server runs as a public host would (QA_PUBLIC=1, offline); --client-nice lowers this client's priority below
the server's (on a machine shared with other work, a lowered client is starved by that work instead). Each asker
has its own client (made before timing) and asks --questions dev questions one after another; all start together.

The same bursts then go to a floor server: a bare gr.Blocks with the same queue settings whose /answer returns
at once without a model, i.e. what Gradio and the clients themselves cost on this machine (--no-floor skips it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.bench_ask import DEV, pick_questions

ROOT = Path(__file__).resolve().parent.parent

SINGLE_QUESTIONS = 20
START_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, runs: Path, fast: bool, log: Path, floor: bool = False) -> tuple[subprocess.Popen, str]:
    """`python app.py` as a public host, or (floor) the bare Gradio server of this module's floor_app."""
    port = free_port()
    env = {**os.environ, "QA_PUBLIC": "1", "HF_HUB_OFFLINE": "1", "QA_RUNS_DIR": str(runs), "QA_DEFAULT_MODEL": model,
           "QA_FAST_INFERENCE": "1" if fast else "0", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1"}
    command = [sys.executable, "-m", "bench.bench_load", "--floor-server"] if floor else [sys.executable, "app.py"]
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return server, url
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"the app did not start within {START_TIMEOUT_S} s (log: {log})")


def floor_answer(model: str, question: str, context: str) -> dict:
    """The floor's /answer: an answer-shaped dict at once, no model."""
    return {"model": model, "answer": context[:10], "start": 0, "end": 10, "windows": 1, "milliseconds": 0.0}


def serve_floor() -> None:
    """The app's queue settings and /answer's concurrency, nothing else (run in the floor server's process)."""
    import gradio as gr

    from qa_core.ui.app import QUEUE_OPTIONS
    from qa_core.ui.common import ANSWER_CONCURRENCY

    with gr.Blocks() as demo:
        gr.api(floor_answer, api_name="answer", concurrency_limit=ANSWER_CONCURRENCY, concurrency_id="answer")
    demo.queue(**QUEUE_OPTIONS).launch()


def rss_mb(pid: int) -> float:
    import psutil

    process = psutil.Process(pid)
    return round(sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20, 1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ask(client, question: dict[str, str]) -> float:
    started = time.perf_counter()
    answer = client.predict("", question["question"], question["context"], api_name="/answer")
    if not isinstance(answer, dict) or "answer" not in answer:
        raise RuntimeError(f"not an answer: {answer!r}")
    return time.perf_counter() - started


def single_question_s(url: str, questions: list[dict[str, str]]) -> float:
    """Median seconds of one visitor asking alone, one question after another."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    return statistics.median(ask(client, q) for q in questions[:SINGLE_QUESTIONS])


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default) and its children so far."""
    import psutil

    process = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [process, *process.children(recursive=True)])


def burst(url: str, askers: int, questions: list[dict[str, str]], per_asker: int, server_pid: int) -> dict:
    """`askers` visitors start together, each asking per_asker questions in turn; with the CPU seconds the
    server and this client spent meanwhile (the two share the machine's cores)."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in range(askers)]
    start, times, errors, lock = threading.Barrier(askers + 1), [], [], threading.Lock()

    def visitor(n: int) -> None:
        start.wait()
        for k in range(per_asker):
            try:
                seconds = ask(clients[n], questions[(n * per_asker + k) % len(questions)])
            except Exception as err:  # every failure counts, whatever the client raised
                with lock:
                    errors.append(f"{type(err).__name__}: {err}"[:200])
                continue
            with lock:
                times.append(seconds)

    threads = [threading.Thread(target=visitor, args=(n,)) for n in range(askers)]
    for thread in threads:
        thread.start()
    cpu_before = cpu_seconds(server_pid), cpu_seconds()
    started = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    server_cpu, client_cpu = cpu_seconds(server_pid) - cpu_before[0], cpu_seconds() - cpu_before[1]
    return {"askers": askers, "questions": askers * per_asker, "answered": len(times), "errors": len(errors),
            "error_samples": errors[:5], "p50_s": round(percentile(times, 0.5), 3) if times else None,
            "p99_s": round(percentile(times, 0.99), 3) if times else None, "wall_s": round(wall, 2),
            "server_cpu_s_per_question": round(server_cpu / max(len(times), 1), 3),
            "client_cpu_s_per_question": round(client_cpu / max(len(times), 1), 3)}


def measure(url: str, questions: list[dict[str, str]], askers: list[int], per_asker: int, server_pid: int) -> dict:
    """One visitor alone (median), then each burst, against a running server."""
    single = single_question_s(url, questions)
    bursts = [burst(url, n, questions, per_asker, server_pid) for n in askers]
    for b in bursts:
        b["p99_over_single"] = round(b["p99_s"] / single, 2) if b["p99_s"] else None
    return {"single_question_median_s": round(single, 3), "bursts": bursts}


def measure_floor(args: argparse.Namespace, questions: list[dict[str, str]], tmp: Path) -> dict:
    server, url = start_server(args.model, tmp / "floor-runs", False, tmp / "floor.log", floor=True)
    try:
        return measure(url, questions, args.askers, args.questions, server.pid)
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    if sys.argv[1:] == ["--floor-server"]:
        return serve_floor()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="the default model of the server")
    parser.add_argument("--askers", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--questions", type=int, default=3, help="questions per asker")
    parser.add_argument("--no-fast", action="store_true", help="answer from the fp32 model (QA_FAST_INFERENCE=0)")
    parser.add_argument("--settle-s", type=float, default=120, help="wait for the compiled int8 copy before timing")
    parser.add_argument("--client-nice", type=int, default=0, help="lower this client's priority by this much")
    parser.add_argument("--no-floor", action="store_true", help="skip the bare-Gradio floor server")
    parser.add_argument("--dev", type=Path, default=DEV, help="SQuAD JSON to take questions from")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "load.json")
    args = parser.parse_args()
    questions = pick_questions(args.dev, 50)
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_server(args.model, Path(tmp) / "runs", not args.no_fast, Path(tmp) / "app.log")
        try:
            os.nice(args.client_nice)
            ask(__import__("gradio_client").Client(url, verbose=False), questions[0])  # the model is loaded
            time.sleep(0 if args.no_fast else args.settle_s)
            rss_before = rss_mb(server.pid)
            app = measure(url, questions, args.askers, args.questions, server.pid)
            rss_after = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
        floor = None if args.no_floor else measure_floor(args, questions, Path(tmp))
    result = {"model": args.model, "fast_inference": not args.no_fast, "client_nice": args.client_nice, **app,
              "floor": floor, "server_rss_mb_before": rss_before, "server_rss_mb_after": rss_after,
              "target": "every question answered, no errors, p99 under 10x the single-question time",
              "machine": {"cpus": os.cpu_count(), "load_average_at_start": load_at_start, "processor": platform.processor() or platform.machine(),
                          "load_average_at_end": os.getloadavg()}}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
