"""The app's API through gradio_client on localhost: a public server probed as a hostile visitor, a training one."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch
from gradio.utils import get_upload_folder
from gradio_client import Client
from transformers import BertConfig, BertForQuestionAnswering

from qa_core.config import QAConfig
from qa_core.settings import Settings, TrainLimits
from qa_core.training import train
from qa_core.ui import app
from tests.conftest import free_port
from tests.test_compare import record, write_run

CONTEXT = "The lighthouse lens was designed by Augustin Fresnel in the early nineteenth century."
QUESTION = "Who designed the lens?"
OFFERED_OFFLINE = "some-org/some-model"  # on the allow-list, but this machine is offline


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
    if before is None:
        del os.environ["HF_HUB_OFFLINE"]
    else:
        os.environ["HF_HUB_OFFLINE"] = before


def serve(settings: Settings, sweep: tuple[int, int] = app.CACHE_SWEEP) -> Iterator[str]:
    demo = app.build_app(settings, sweep).queue(**app.QUEUE_OPTIONS)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **app.launch_options(settings, sweep))
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir) -> Path:
    root = tmp_path_factory.mktemp("runs")
    train(QAConfig(model_name_or_path=str(tiny_model_dir), train_file="sample", validation_file="sample",
                   output_dir=str(root / "20250101-000000-tiny"), max_steps=1, per_device_train_batch_size=4,
                   max_eval_samples=6, max_seq_length=128, doc_stride=32))
    return root


@pytest.fixture(scope="module")
def public_url(offline, runs, tiny_model_dir) -> Iterator[str]:
    settings = Settings(runs, str(tiny_model_dir), training_enabled=False, fast_inference=False, public=True,
                        allowed_models=(OFFERED_OFFLINE,), max_upload_bytes=100_000)
    yield from serve(settings)


@pytest.fixture(scope="module")
def client(public_url) -> Client:
    return Client(public_url, verbose=False)


def refused(client: Client, *args, api_name: str) -> tuple[str, float]:
    """The message of a refused call and the seconds it took."""
    started = time.perf_counter()
    with pytest.raises(Exception) as err:
        client.predict(*args, api_name=api_name)
    return str(err.value), time.perf_counter() - started


def test_only_the_endpoints_for_programs_are_in_the_api(client):
    assert set(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) == {
        "/answer", "/list_runs", "/start_training", "/cancel_training", "/training_status", "/run_records"}


def test_an_answer_is_json(client, tiny_model_dir):
    answer = client.predict("", QUESTION, CONTEXT, api_name="/answer")
    assert answer["answer"] == CONTEXT[answer["start"]:answer["end"]] and answer["windows"] == 1
    assert 0 < answer["probability"] <= 1 and answer["milliseconds"] > 0 and len(answer["alternatives"]) >= 1
    assert set(answer["alternatives"][0]) == {"answer", "start", "end", "score", "probability"}
    by_run = client.predict("20250101-000000-tiny", QUESTION, CONTEXT, api_name="/answer")
    assert by_run["model"] == "20250101-000000-tiny" and by_run["answer"]


def test_an_abstention_is_scored_as_predict_scores_it(client, runs, capsys):
    """Found by trying the API on a SQuAD 2.0 run: /answer gave an abstention the passed-over span's score and
    probability, where `train.py predict` gives the null score, and no null score or odds at all."""
    from qa_core import cli

    run = runs / "20250101-000002-abstains"
    shutil.copytree(runs / "20250101-000000-tiny", run)
    (run / "eval_metrics.json").write_text('{"best_f1_thresh": -1e6}', encoding="utf-8")  # abstains everywhere
    try:
        shown = client.predict(run.name, QUESTION, CONTEXT, api_name="/answer")
        assert cli.main(["predict", "--model_name_or_path", str(run), "--question", QUESTION,
                         "--context", CONTEXT]) == 0
    finally:
        shutil.rmtree(run)
    printed = json.loads(capsys.readouterr().out)
    assert shown["abstained"] and shown["answer"] == printed["answer"] == ""
    assert shown["score"] == pytest.approx(printed["score"]) and shown["probability"] is None
    assert shown["null_score"] == pytest.approx(printed["null_score"]) == pytest.approx(printed["score"])
    assert shown["null_odds"] == pytest.approx(printed["null_odds"])
    best = shown["alternatives"][0]  # the best span passed over, as the Ask tab marks it
    assert best["answer"] == printed["alternatives"][0]["answer"]
    assert best["score"] == pytest.approx(shown["null_score"] - shown["null_odds"])
    plain = client.predict(runs.joinpath("20250101-000000-tiny").name, QUESTION, CONTEXT, api_name="/answer")
    assert cli.main(["predict", "--model_name_or_path", str(runs / "20250101-000000-tiny"), "--question", QUESTION,
                     "--context", CONTEXT]) == 0
    printed = json.loads(capsys.readouterr().out)
    for v1 in (plain, printed):  # SQuAD v1.1: the same keys, empty
        assert v1["null_score"] is None and v1["null_odds"] is None and v1["score"] is not None
    assert plain["score"] == pytest.approx(printed["score"])


def asking_meanwhile(client_url: str, probe) -> tuple[object, list[float]]:
    """Run `probe` while another visitor asks five questions; the probe's result and the others' latencies."""
    def ask_five() -> list[float]:
        other, times = Client(client_url, verbose=False), []
        for _ in range(5):
            started = time.perf_counter()
            assert other.predict("", QUESTION, CONTEXT, api_name="/answer")["answer"]
            times.append(time.perf_counter() - started)
        return times
    with ThreadPoolExecutor(2) as pool:
        probed, others = pool.submit(probe), pool.submit(ask_five)
        return probed.result(60), others.result(60)


def test_a_huge_context_is_refused_at_once_while_others_are_answered(client, public_url):
    message, seconds = asking_meanwhile(public_url, lambda: refused(client, "", QUESTION, "中" * 2_000_000,
                                                                     api_name="/answer"))[0]
    assert "413" in message and seconds < 10  # its body is refused unread: Gradio would parse all of it first
    message, seconds = refused(client, "", QUESTION, "中" * 20_000, api_name="/answer")
    assert "20,000 characters; this server answers contexts of up to 15,000" in message and seconds < 10
    too_many_windows = "灯塔看守人每天晚上都给钟表上弦。" * 600  # under the character limit, over the windows one
    message, seconds = refused(client, "", QUESTION, too_many_windows, api_name="/answer")
    assert "windows of 256 tokens" in message and seconds < 10
    assert "question has" in refused(client, "", "why " * 1000, CONTEXT, api_name="/answer")[0]


def test_a_body_past_the_limit_is_not_read_and_the_server_keeps_serving(client, public_url):
    """Every body was read whole into memory before a handler could check it; uploads have their own limit."""
    import json

    join = f"{public_url}gradio_api/queue/join"
    body = json.dumps({"data": ["", QUESTION, "a" * 8_000_000], "fn_index": client._infer_fn_index("/answer", None),
                       "session_hash": "s", "event_data": None, "trigger_id": None}).encode()
    json_type = {"content-type": "application/json"}
    declared = httpx.post(join, content=body, headers=json_type, timeout=30)  # read whole, it joins the queue (200)
    assert declared.status_code == 413 and "at most" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read, stopped at the limit
        for start in range(0, len(body), 500_000):
            yield body[start:start + 500_000]

    try:
        streamed = httpx.post(join, content=chunks(), headers=json_type, timeout=30)
        assert streamed.status_code == 413 and "at most" in streamed.json()["detail"]
    except httpx.HTTPError:  # or the connection closes while the rest is sent
        pass
    assert client.predict("", QUESTION, CONTEXT, api_name="/answer")["answer"]


def test_an_offered_hub_id_fails_fast_offline_with_one_log_line(client, public_url, caplog):
    with caplog.at_level(logging.INFO):
        (message, seconds), others = asking_meanwhile(
            public_url, lambda: refused(client, OFFERED_OFFLINE, QUESTION, CONTEXT, api_name="/answer"))
    assert "not reachable from this machine (offline)" in message and seconds < 10
    assert max(others) < 10
    mentions = [r for r in caplog.records if OFFERED_OFFLINE in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(mentions) <= 1


@pytest.mark.parametrize("model", ["/etc", "../../etc", "qa_core", "other-org/model", str(Path.home())])
def test_server_paths_are_refused_without_a_trace_of_them(client, model, runs):
    message, seconds = refused(client, model, QUESTION, CONTEXT, api_name="/answer")
    assert "is not offered on this server" in message and seconds < 10
    assert str(runs.parent) not in message and "pytest" not in message  # nothing of the server's folders
    message = refused(client, model, api_name="/run_records")[0]
    assert "not a run on this server" in message


@pytest.mark.parametrize("args, api_name, expected", [
    ((5, QUESTION, CONTEXT), "/answer", "model must be text, got int"),
    (("", 5, CONTEXT), "/answer", "question must be text, got int"),
    (("", [QUESTION], CONTEXT), "/answer", "question must be text, got list"),
    (("", QUESTION, {"text": CONTEXT}), "/answer", "context must be text, got dict"),
    ((["run"],), "/run_records", "run must be text, got list")])
def test_wrongly_typed_arguments_are_refused_naming_the_argument(client, args, api_name, expected):
    message, seconds = refused(client, *args, api_name=api_name)
    assert expected in message and "upstream" not in message and seconds < 10


def test_names_are_trimmed_alike_everywhere(client):
    """Found by a tester: /answer took " name" (trimmed) where /run_records refused " name "."""
    run = "20250101-000000-tiny"
    assert len(client.predict(f" {run} ", api_name="/run_records")) == 6
    assert client.predict(f"\t{run}\n", QUESTION, CONTEXT, api_name="/answer")["model"] == run


@pytest.mark.parametrize("args, api_name, expected", [
    (("\x00",), "/run_records", "the run name holds a character that does not print (U+0000 at character 1)"),
    (("20250101-000000-tiny\u200b", QUESTION, CONTEXT), "/answer",
     "the model name holds a character that does not print (U+200B at character 21)"),
    (("a\tb",), "/run_records", "the run name holds a character that does not print (U+0009 at character 2)")])
def test_a_name_with_a_character_that_does_not_print_is_refused_saying_which(client, args, api_name, expected):
    """Found by a tester: /run_records("\\x00") answered "run 'x00' is not a run": the name's repr escape was cut
    as a server path."""
    message = refused(client, *args, api_name=api_name)[0]
    assert expected in message, message


@pytest.mark.parametrize("question, context, expected", [
    (QUESTION, "Fresnel \ud800 designed it.", "context is not valid Unicode (an unpaired surrogate at character 8)"),
    ("Who \udcff?", CONTEXT, "question is not valid Unicode (an unpaired surrogate at character 4)")])
def test_text_that_is_not_valid_unicode_is_refused_naming_the_field(public_url, question, context, expected):
    """Found by a tester: a lone surrogate (the JSON escape \\ud800) failed in the tokenizer with a TypeError,
    which the endpoint returned as {"error": null}. Sent as JSON text: gradio_client cannot encode it."""
    body = json.dumps({"data": ["", question, context]})  # ASCII: a lone surrogate as its escape, \ud800
    call = f"{public_url}gradio_api/call/answer"
    event = httpx.post(call, content=body, headers={"content-type": "application/json"}, timeout=10).json()
    result = httpx.get(f"{call}/{event['event_id']}", timeout=10).text
    assert "event: error" in result and expected in result, result


def test_training_and_server_data_are_refused_on_a_public_server(client):
    assert "switched off" in refused(client, "", "sample", "", None, api_name="/start_training")[0]
    for data in (("/etc/passwd", ""), ("sample", "/etc/passwd")):  # switched off comes first, whatever the data
        assert "training is switched off" in refused(client, "", *data, None, api_name="/start_training")[0]
    assert client.predict(api_name="/training_status")["status"] == "idle"
    runs = client.predict(api_name="/list_runs")
    assert [r["run"] for r in runs] == ["20250101-000000-tiny"] and runs[0]["status"] == "finished"
    records = client.predict("20250101-000000-tiny", api_name="/run_records")
    assert len(records) == 6 and {"question", "prediction", "f1", "gold_answers"} <= set(records[0])


def upload(url: str, path: Path) -> httpx.Response:
    with path.open("rb") as data:
        return httpx.post(url + "gradio_api/upload", files={"files": (path.name, data)}, timeout=30)


def uploaded(name: str) -> list[Path]:
    """The files of that name in Gradio's upload folder."""
    return list(Path(get_upload_folder()).rglob(name))


def test_no_event_runs_outside_the_queue(public_url):
    """Found by a tester: Gradio's /gradio_api/run/<name> route ran any event, the page's hidden ones too, without
    the queue (so without its concurrency limits) and without a session: a job started there had no owner, and
    any stranger could cancel it. Every event goes through the queue (/gradio_api/call/<name>, gradio_client)."""
    for name in ("answer", "cancel_training", "ui_summarize"):
        response = httpx.post(f"{public_url}gradio_api/run/{name}", json={"data": []}, timeout=30)
        assert response.status_code == 404 and "join the queue" in response.text, (name, response.text)


def test_a_server_that_does_not_train_refuses_uploads_before_writing_them(public_url, tmp_path):
    """Found by a tester: with training off (a public server's default) /gradio_api/upload still took files up to
    the size limit and kept them, though nothing on the server reads them: a stranger could fill its disk."""
    data = tmp_path / f"{tmp_path.name}-kept.json"
    data.write_bytes(b"x" * 50_000)  # under the size limit
    response = upload(public_url, data)
    assert response.status_code == 403, response.text
    assert "uploads are refused: training is switched off on this server" in response.json()["detail"]
    assert uploaded(data.name) == []


@pytest.fixture(scope="module")
def sweeping_url(offline, tmp_path_factory, tiny_model_dir) -> Iterator[str]:
    """A public server that trains, sweeping its uploads every second instead of every CACHE_SWEEP[0]."""
    settings = Settings(tmp_path_factory.mktemp("sweeping-runs"), str(tiny_model_dir), training_enabled=True,
                        fast_inference=False, public=True, max_upload_bytes=100_000)
    yield from serve(settings, sweep=(1, 1))


def test_uploads_over_the_limit_are_refused_with_the_limit(sweeping_url, tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * 200_000)
    response = upload(sweeping_url, big)
    assert response.status_code == 413 and "100000 bytes" in response.text


def test_an_upload_no_job_uses_is_swept(sweeping_url, tmp_path):
    """Where training is on, a file uploaded and never started on is deleted by the app's sweep (Gradio's
    delete_cache, as launched here: README says how often and how old)."""
    data = tmp_path / f"{tmp_path.name}-unused.json"
    data.write_bytes(b"x" * 50_000)
    response = upload(sweeping_url, data)
    assert response.status_code == 200 and uploaded(data.name), response.text
    deadline = time.monotonic() + 20
    while uploaded(data.name):
        assert time.monotonic() < deadline, "the upload was not swept"
        time.sleep(0.5)


@pytest.fixture
def capped_url(offline, tmp_path_factory, tiny_model_dir) -> Iterator[str]:
    """A training public server whose uploads may hold 120 kB in all, in an upload folder of its own (no other
    server's files count), swept of files older than 3 s every second."""
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("capped-uploads"))
    settings = Settings(tmp_path_factory.mktemp("capped-runs"), str(tiny_model_dir), training_enabled=True,
                        fast_inference=False, public=True, max_upload_bytes=100_000, max_uploads_bytes=120_000)
    try:
        yield from serve(settings, sweep=(1, 3))
    finally:
        os.environ.pop("GRADIO_TEMP_DIR") if before is None else os.environ.update(GRADIO_TEMP_DIR=before)


def test_uploads_past_the_servers_total_are_refused_until_swept(capped_url, tmp_path):
    """Each upload was bounded, their total only by the hourly sweep: a stranger uploading again and again could
    fill the server's disk within the hour. Past the total, an upload is refused before a byte of it is written."""
    data = tmp_path / "data.json"
    data.write_bytes(b"x" * 40_000)  # with its file and folder, about 48 kB of disk
    assert [upload(capped_url, data).status_code for _ in range(2)] == [200, 200]
    response = upload(capped_url, data)
    assert response.status_code == 507, response.text
    detail = response.json()["detail"]
    assert "uploads are refused for now" in detail and "QA_MAX_UPLOADS_MB" in detail and str(tmp_path) not in detail
    deadline = time.monotonic() + 30
    while (response := upload(capped_url, data)).status_code != 200:  # the sweep makes room again
        assert time.monotonic() < deadline, response.text
        time.sleep(1)


def raw_request(url: str, head: str, body: bytes = b"", read: bool = True) -> tuple[socket.socket, bytes]:
    """An HTTP/1.1 request written as given (headers a client library would not send together), and its reply
    (unless not `read`: the socket is then left open, the body unsent)."""
    host, port = url.removeprefix("http://").strip("/").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
    return sock, read_reply(sock) if read else b""


def read_reply(sock: socket.socket) -> bytes:
    """An HTTP reply read whole: its headers, then as many bytes as its Content-Length says."""
    reply = b""
    while b"\r\n\r\n" not in reply and (chunk := sock.recv(4096)):
        reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head, re.I)
    while length and len(body) < int(length[1]) and (chunk := sock.recv(4096)):
        body += chunk
    return head + b"\r\n\r\n" + body


def chunked(data: bytes, size: int = 8192) -> bytes:
    pieces = [data[i:i + size] for i in range(0, len(data), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"


def multipart(files: dict[str, bytes], boundary: str = "qa-boundary") -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
             f"Content-Type: application/json\r\n\r\n".encode() + data + b"\r\n" for name, data in files.items()]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def test_a_chunked_body_is_counted_as_it_arrives_whatever_its_length_says(capped_url):
    """Found by a tester: a body declaring both a Content-Length and chunked encoding was let through by its small
    length while the server read all its chunks: a 200 MB event body went into memory, 300 kB uploads were each
    counted as 10 bytes."""
    event = json.dumps({"data": ["x" * 3_000_000], "fn_index": 0, "session_hash": "s"}).encode()
    _, reply = raw_request(capped_url, "POST /gradio_api/queue/join HTTP/1.1\nHost: x\nContent-Type: "
                           "application/json\nContent-Length: 10\nTransfer-Encoding: chunked\n", chunked(event))
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    body = multipart({"big.json": b"x" * 90_000})
    for _ in range(2):  # the second takes the uploads past 120 kB
        _, reply = raw_request(capped_url, "POST /gradio_api/upload HTTP/1.1\nHost: x\nContent-Type: "
                               "multipart/form-data; boundary=qa-boundary\nContent-Length: 10\n"
                               "Transfer-Encoding: chunked\n", chunked(body))
    assert reply.startswith(b"HTTP/1.1 507") and b"uploads are refused for now" in reply, reply[:300]


def test_an_upload_that_declares_much_and_sends_nothing_takes_no_room(capped_url, tmp_path):
    """Found by a tester: requests that declared a large upload and sent nothing held their declared size for
    seconds, refusing everyone's uploads with a false "the uploads on this server take 500.0 MB"."""
    held, _ = raw_request(capped_url, "POST /gradio_api/upload HTTP/1.1\nHost: x\nContent-Type: multipart/form-data; "
                          "boundary=qa-boundary\nContent-Length: 100000\n", read=False)
    try:
        data = tmp_path / "data.json"
        data.write_bytes(b"x" * 50_000)
        response = upload(capped_url, data)
        assert response.status_code == 200, response.text
    finally:
        held.close()


def test_many_small_files_count_as_the_disk_they_take(capped_url):
    """Found by a tester: each uploaded file takes a folder and a file of at least a block each, which the budget
    counted as a few bytes: 3,000 tiny files took 24.9 MB on a server keeping 1 MB for uploads."""
    files = {f"f{i}.json": b"{}" for i in range(30)}  # 30 files of 2 bytes: about 240 kB of disk
    response = httpx.post(capped_url + "gradio_api/upload", files=[("files", (n, d)) for n, d in files.items()],
                          timeout=30)
    assert response.status_code == 507, response.text


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("local-runs")


@pytest.fixture(scope="module")
def local_client(offline, local_runs, tiny_model_dir) -> Iterator[Client]:
    settings = Settings(local_runs, str(tiny_model_dir), fast_inference=False)
    for url in serve(settings):
        yield Client(url, verbose=False)


def test_a_local_server_trains_through_the_api(local_client, tmp_path):
    options = {"max_steps": 2, "per_device_train_batch_size": 4, "max_seq_length": 128, "doc_stride": 32,
               "max_eval_samples": 4}
    started = local_client.predict("", "sample", "", options, api_name="/start_training")
    assert started["status"] in ("starting", "running") and started["job_id"] == 1
    assert "already running" in refused(local_client, "", "sample", "", options, api_name="/start_training")[0]
    deadline = time.monotonic() + 120
    while (status := local_client.predict(api_name="/training_status"))["status"] not in ("finished", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert status["status"] == "finished", status["message"]
    assert status["step"] == 2 and status["run"] and "f1" in status["metrics"]
    assert len(local_client.predict(status["run"], api_name="/run_records")) == 4
    assert local_client.predict(status["run"], QUESTION, CONTEXT, api_name="/answer")["model"] == status["run"]
    assert local_client.predict(api_name="/cancel_training")["status"] == "finished"  # nothing to cancel
    bad = refused(local_client, "", "sample", "", {"output_dir": "/tmp/x"}, api_name="/start_training")[0]
    assert "unknown training options ['output_dir']" in bad


@pytest.mark.parametrize("options, expected", [
    ({"max_steps": "abc"}, "max_steps must be a whole number, got 'abc'"),
    ({"learning_rate": [1]}, "learning_rate must be a number, got [1]"),
    ({"max_steps": "nan"}, "max_steps must be a whole number, got 'nan'"),  # a float NaN is not JSON
    ({"num_train_epochs": "inf"}, "num_train_epochs must be a number, got 'inf'"),
    # values of the wrong type, refused as the library refuses them, not read as the form's text would be
    ({"bf16": "false", "max_steps": 1}, "bf16 must be true or false, got 'false'"),
    ({"max_steps": "10"}, "max_steps must be a whole number, got '10'"),
    ({"max_steps": " 3 "}, "max_steps must be a whole number, got ' 3 '"),
    ({"max_steps": 2.5}, "max_steps must be a whole number, got 2.5"),
    ({"learning_rate": "1e-4"}, "learning_rate must be a number, got '1e-4'"),
    ({"bf16": "auto"}, "bf16 must be true or false, got 'auto'"),  # null is the API's auto
    # the Train form's 0 stands for "all" (its number box cannot be blank); the API's is null, and 0 is refused as
    # the library refuses it (found by a tester: 0 started a job on every example)
    ({"max_train_samples": 0}, "max_train_samples must be > 0 or None (all examples), got 0"),
    ({"max_eval_samples": 0}, "max_eval_samples must be > 0 or None (all examples), got 0"),
    ("max_steps=3", "options must be a JSON object"), ([["max_steps", 3]], "options must be a JSON object")])
def test_bad_training_options_are_refused_naming_the_option(local_client, options, expected):
    message = refused(local_client, "", "sample", "", options, api_name="/start_training")[0]
    assert expected in message and "could not convert" not in message


@pytest.mark.parametrize("model, train_file, validation_file, expected", [
    ("/nowhere/model", "sample", "", "looked for a local folder"),
    ("not-a-model-xyz", "sample", "", "not in the hub cache"),
    ("", "/nowhere/train.json", "", "train_file: no such file"),
    ("", "sample", "/nowhere/dev.json", "validation_file: no such file")])
def test_a_start_the_train_tab_would_refuse_is_refused_at_once_leaving_no_folder(
        local_client, local_runs, model, train_file, validation_file, expected):
    before, job = set(local_runs.iterdir()), local_client.predict(api_name="/training_status")["job_id"]
    message = refused(local_client, model, train_file, validation_file, {"max_steps": 1}, api_name="/start_training")[0]
    assert expected in message
    assert set(local_runs.iterdir()) == before and local_client.predict(api_name="/training_status")["job_id"] == job


@pytest.fixture(scope="module")
def public_trainer_runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("public-trainer-runs")


@pytest.fixture(scope="module")
def public_trainer_url(offline, public_trainer_runs, tiny_model_dir) -> Iterator[str]:
    """A public server whose host switched training on (QA_PUBLIC=1 QA_ENABLE_TRAINING=1)."""
    settings = Settings(public_trainer_runs, str(tiny_model_dir), training_enabled=True, fast_inference=False,
                        public=True, max_train_examples=20)
    yield from serve(settings)


@pytest.mark.parametrize("options, expected", [
    ({"max_steps": 10**9}, "max_steps 1000000000 is over this server's limit of 2,000 (QA_MAX_TRAIN_STEPS)"),
    ({"per_device_train_batch_size": 100000}, "per_device_train_batch_size 100000 is over this server's limit of 64"),
    ({"per_device_eval_batch_size": 100000}, "per_device_eval_batch_size 100000 is over this server's limit of 64"),
    ({"num_train_epochs": 1e6}, "num_train_epochs 1000000.0 is over this server's limit of 20"),
    ({"max_seq_length": 100000, "doc_stride": 128}, "max_seq_length 100000 is over this server's limit of 512"),
    ({"max_steps": 2000, "per_device_train_batch_size": 16, "gradient_accumulation_steps": 1000},
     "= 16000 windows a step, over this server's limit of 64 (QA_MAX_BATCH_SIZE)"),
    ({"dataloader_num_workers": 512}, "dataloader_num_workers 512 is over this server's limit of 2"),
    ({"max_seq_length": 384, "doc_stride": 315}, "doc_stride 315 with max_seq_length 384 and max_query_length 64 "
                                                 "advances each window by 1 token(s) of context")])
def test_a_public_server_that_trains_bounds_the_options(public_trainer_url, public_trainer_runs, options, expected):
    client = Client(public_trainer_url, verbose=False)
    message = refused(client, "", "sample", "", options, api_name="/start_training")[0]
    assert expected in message and list(public_trainer_runs.iterdir()) == []
    assert client.predict(api_name="/training_status")["status"] == "idle"


def test_on_a_public_server_only_the_visitor_who_started_a_job_cancels_it(public_trainer_url):
    owner, stranger = Client(public_trainer_url, verbose=False), Client(public_trainer_url, verbose=False)
    options = {"max_steps": 2000, "per_device_train_batch_size": 4, "max_seq_length": 128, "doc_stride": 32}
    assert owner.predict("", "sample", "", options, api_name="/start_training")["status"] in ("starting", "running")
    message = refused(stranger, api_name="/cancel_training")[0]
    assert "only the visitor who started this training job can cancel it" in message
    assert stranger.predict(api_name="/training_status")["status"] in ("starting", "running")
    assert owner.predict(api_name="/cancel_training")["status"] == "cancelling"
    deadline = time.monotonic() + 120
    while owner.predict(api_name="/training_status")["status"] == "cancelling":
        assert time.monotonic() < deadline
        time.sleep(0.5)


@pytest.fixture(scope="module")
def windowed_runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("windowed-runs")


@pytest.fixture(scope="module")
def windowed_url(offline, windowed_runs, tiny_model_dir) -> Iterator[str]:
    """A public trainer that cuts at most 20 training and 10 evaluation windows (the sample's questions make two
    windows each of 128 tokens)."""
    settings = Settings(windowed_runs, str(tiny_model_dir), training_enabled=True, fast_inference=False,
                        public=True, max_train_examples=20, train_limits=TrainLimits(windows=20, eval_windows=10))
    yield from serve(settings)


def test_a_start_over_the_window_limits_is_refused_up_front_and_the_server_keeps_serving(windowed_url,
                                                                                          windowed_runs):
    """Found by trying the Train tab: a job over QA_MAX_TRAIN_WINDOWS was announced as started, then failed. The
    start itself is refused, naming the windows the data makes and the limit; no job, no run folder."""
    client = Client(windowed_url, verbose=False)
    options = {"max_steps": 2, "per_device_train_batch_size": 4, "max_seq_length": 128, "doc_stride": 32}
    for samples, expected in (
            ({"max_train_samples": 20}, "training data: 20 questions make 40 windows; this server cuts at most 20 "
                                        "windows from each training data source (QA_MAX_TRAIN_WINDOWS)"),
            ({"max_train_samples": 4, "max_eval_samples": 8},
             "evaluation data: 8 questions make 16 windows; this server cuts at most 10 windows from each "
             "evaluation data source (QA_MAX_EVAL_WINDOWS)")):
        message = refused(client, "", "sample", "", {**options, **samples}, api_name="/start_training")[0]
        assert expected in message, message
        assert list(windowed_runs.iterdir()) == []
        assert client.predict(api_name="/training_status")["status"] == "idle"
    within = {**options, "max_train_samples": 4, "max_eval_samples": 4}
    assert client.predict("", "sample", "", within, api_name="/start_training")["job_id"] == 1
    deadline = time.monotonic() + 120
    while (status := client.predict(api_name="/training_status"))["status"] not in ("finished", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert status["status"] == "finished", status["message"]


def test_the_api_gives_the_ask_tabs_calibrated_probability(client, runs, tiny_model_dir):
    from qa_core import calibration
    from qa_core.service import QAService
    from qa_core.ui.ask import AskHandlers

    def fitted(run: Path, temperature: float) -> calibration.Calibration:
        """The run's calibration as if fitted at this temperature (its tiny evaluation is too few to fit one)."""
        return calibration.replace(calibration.read_calibration(run), temperature=temperature, unfitted=None,
                                   questions=calibration.MIN_CALIBRATION_QUESTIONS)

    run = runs / "20250101-000001-calibrated"
    shutil.copytree(runs / "20250101-000000-tiny", run)
    try:
        plain = client.predict(run.name, QUESTION, CONTEXT, api_name="/answer")
        calibration.write_calibration(run, fitted(run, 3.0))
        scaled = client.predict(run.name, QUESTION, CONTEXT, api_name="/answer")
        calibration.write_calibration(run, fitted(run, 1.0))
        fitted_at_one = client.predict(run.name, QUESTION, CONTEXT, api_name="/answer")
        calibration.write_calibration(run, fitted(run, 3.0))
        handlers = AskHandlers(QAService(Settings(runs, str(tiny_model_dir), training_enabled=False,
                                                  fast_inference=False, public=True)))
        shown = asyncio.run(handlers.ask_in_turn(run.name, QUESTION, CONTEXT))
    finally:
        shutil.rmtree(run)
    assert not plain["calibrated"] and "too few evaluation questions" in plain["uncalibrated_reason"]
    assert scaled["calibrated"] and scaled["temperature"] == 3.0 and scaled["probability"] != plain["probability"]
    assert fitted_at_one["calibrated"] and fitted_at_one["temperature"] == 1.0  # fitted, at exactly 1
    assert list(shown["alternatives"]["probability"]) == [round(a["probability"], 3) for a in scaled["alternatives"]]
    assert scaled["probability"] == scaled["alternatives"][0]["probability"]
    default = client.predict("", QUESTION, CONTEXT, api_name="/answer")  # a model folder without a calibration
    assert not default["calibrated"] and default["temperature"] == 1.0


# The project's own words, repeated to the public context limit: about 24 windows of 256 tokens.
LONG_CONTEXT = ("The keeper of the northern light wrote of storms and ships in a ledger kept by the stairs. " * 170)[:15_000]
STRANGER, VISITOR = "203.0.113.7", "198.51.100.9"  # documentation addresses, sent as uvicorn's trusted proxy would


@pytest.fixture(scope="module")
def slow_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A BERT big enough that a context at the public limit takes a good part of a second."""
    folder = tmp_path_factory.mktemp("slow-bert")
    torch.manual_seed(0)
    BertForQuestionAnswering(BertConfig(vocab_size=len(tokenizer), hidden_size=256, num_hidden_layers=4,
                                        num_attention_heads=4, intermediate_size=1024)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def busy_url(offline, tmp_path_factory, slow_model_dir) -> Iterator[str]:
    settings = Settings(tmp_path_factory.mktemp("busy-runs"), str(slow_model_dir), training_enabled=False,
                        fast_inference=False, public=True)
    yield from serve(settings)


def seconds_to_answer(client: Client, context: str) -> float:
    started = time.perf_counter()
    assert client.predict("", QUESTION, context, api_name="/answer")["answer"] is not None
    return time.perf_counter() - started


def test_one_visitors_many_long_questions_do_not_hold_up_anothers(busy_url):
    """Answers take turns between callers: while a stranger keeps many questions about contexts at the public
    limit in flight, from several sessions (more than Gradio's queue would once let through), another visitor's
    short question waits for about one of them, not for all."""
    strangers = [Client(busy_url, verbose=False, headers={"X-Forwarded-For": STRANGER}) for _ in range(5)]
    visitor = Client(busy_url, verbose=False, headers={"X-Forwarded-For": VISITOR})
    alone = min(seconds_to_answer(visitor, CONTEXT) for _ in range(2))
    one_long = min(seconds_to_answer(strangers[0], LONG_CONTEXT) for _ in range(2))
    jobs = [stranger.submit("", QUESTION, LONG_CONTEXT, api_name="/answer") for stranger in strangers for _ in range(5)]
    time.sleep(0.5)  # the stranger's questions reach the server
    waited = seconds_to_answer(visitor, CONTEXT)
    outcomes = []
    for job in jobs:
        try:
            outcomes.append(job.result(120)["windows"])
        except Exception as err:  # refused: more in flight than one caller may have
            outcomes.append(str(err))
    logging.getLogger(__name__).info("a short question alone %.2f s, one long %.2f s; a short one among the long "
                                     "waited %.2f s", alone, one_long, waited)
    # first come, first served, the short question waited for every long one in flight
    assert waited < alone + 1.5 * one_long + 0.5, f"waited {waited:.1f} s; one long question takes {one_long:.1f} s"
    refusals = [o for o in outcomes if isinstance(o, str)]
    assert len(refusals) == 5 and all("already have 4 questions" in r and "QA_" not in r for r in refusals)


MANY_RECORDS = 10_000  # enough that reading them as JSON takes a good part of a second, on a fast CPU too


@pytest.fixture(scope="module")
def records_url(offline, tmp_path_factory, tiny_model_dir) -> Iterator[str]:
    """A public server with a run of many short evaluation records, and a run of one."""
    root = tmp_path_factory.mktemp("many-records")
    write_run(root / "many", [record(n, "Augustin Fresnel", 100, 100) for n in range(MANY_RECORDS)])
    write_run(root / "one", [record(0, "Fresnel", 0, 66.7)])
    yield from serve(Settings(root, str(tiny_model_dir), training_enabled=False, fast_inference=False, public=True))


def test_one_visitors_many_record_reads_take_turns_with_anothers(records_url, caplog):
    """Found by a tester: reading a run's records (/run_records, the Errors tab's figures) ran in the web server's
    threads, first come, first served, as many at once as a visitor sent, beside the model thread. They take turns
    between callers on the model thread, with the answers: a caller's reads beyond its bound are refused at once,
    and another visitor's read, or question, waits for about one of the stranger's reads, not for all of them.

    The wait is counted in calls the model thread started meanwhile (its debug log), not in the stranger's replies
    that came back meanwhile: those are large, and their way back through the web server and the clients, all in
    this process, takes a time that varies with the machine's load."""
    caplog.set_level(logging.DEBUG, logger="qa_core.fairness")
    strangers = [Client(records_url, verbose=False, headers={"X-Forwarded-For": STRANGER}) for _ in range(4)]
    visitor = Client(records_url, verbose=False, headers={"X-Forwarded-For": VISITOR})
    refusals: list[str] = []

    def read(client: Client) -> None:
        try:
            client.predict("many", api_name="/run_records")
        except Exception as err:  # refused: more in flight than one caller may have
            refusals.append(str(err))

    with ThreadPoolExecutor(len(strangers) * 5) as pool:
        jobs = [pool.submit(read, stranger) for stranger in strangers for _ in range(5)]
        time.sleep(0.5)  # the stranger's reads reach the server
        assert visitor.predict("one", api_name="/run_records")
        assert visitor.predict("", QUESTION, CONTEXT, api_name="/answer")
        for job in jobs:
            job.result(120)
    # (address, calls started between its coming and its start, calls waiting when it came), in the order served
    turns = [r.args[1:] for r in caplog.records if r.name == "qa_core.fairness" and r.args and r.args[0] == "qa-model"]
    logging.getLogger(__name__).info("the model thread's calls (address, others started while it waited, calls "
                                     "waiting when it came): %s", turns)
    # at most one of each session's five (its others may come back before the last is sent, on two busy cores)
    assert 1 <= len(refusals) <= len(strangers) and all("already have 4 " in r and "QA_" not in r for r in refusals)
    assert sum(address == STRANGER for address, *_ in turns) == len(strangers) * 5 - len(refusals)  # all in turn
    visits = [(waited, ahead) for address, waited, ahead in turns if address == VISITOR]
    # first come, first served, each visit would have waited for every read waiting when it came: the first comes
    # while many do (the second may come late, its way in slowed by the replies of those served meanwhile)
    assert len(visits) == 2 and all(waited <= 1 for waited, _ in visits) and visits[0][1] >= 3, turns


class Searches:
    """A finder that only notes the modules the import system looks for (it finds none itself)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name: str, path=None, target=None) -> None:
        self.names.append(name)


@pytest.mark.skipif(importlib.util.find_spec("bokeh") is not None, reason="bokeh is installed here")
def test_a_new_sessions_first_call_searches_no_folder_for_a_plot_library_not_installed(records_url):
    """Found profiling a tester's load (each call a new session): a new Gradio session asks every gr.Plot for its
    settings, and each tries `import bokeh`; not installed, every try searched each folder of sys.path again, the
    largest part of the event loop's work under that load, outside any turn."""
    searches = Searches()
    sys.meta_path.insert(0, searches)
    try:
        assert Client(records_url, verbose=False).predict("one", api_name="/run_records")
    finally:
        sys.meta_path.remove(searches)
    assert "bokeh" not in searches.names


@pytest.fixture(scope="module")
def throttled_url(offline, runs, tiny_model_dir) -> Iterator[str]:
    settings = Settings(runs, str(tiny_model_dir), training_enabled=False, fast_inference=False, public=True,
                        max_address_events_per_s=2.0)  # ten events at once, then two a second
    yield from serve(settings)


def test_one_address_sending_many_events_at_once_cannot_fill_the_queue(throttled_url):
    """Found by a tester: one address sending 300 questions at once (each call a new session) filled Gradio's queue,
    one line for everyone, and other visitors got 503 'Queue is full'; the bounds in flight are checked only when
    an event starts. An address's events past its budget are refused at the door, another address's are not."""
    def join(address: str) -> httpx.Response:
        return httpx.post(f"{throttled_url}gradio_api/call/answer", json={"data": ["", QUESTION, CONTEXT]},
                          headers={"X-Forwarded-For": address}, timeout=30)

    flood = [join(STRANGER) for _ in range(30)]
    codes = [r.status_code for r in flood]
    assert set(codes) == {200, 429} and codes.count(200) <= 14, codes
    refusal = flood[codes.index(429)].json()["detail"]
    assert "too many requests from your address" in refusal and "QA_" not in refusal
    visit = join(VISITOR)
    assert visit.status_code == 200
    result = httpx.get(f"{throttled_url}gradio_api/call/answer/{visit.json()['event_id']}", timeout=60)
    assert "event: complete" in result.text and "Fresnel" in result.text
