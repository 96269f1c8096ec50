"""Fair turns on one worker thread: callers served round-robin, each caller's calls in order, a bound in flight."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from qa_core import fairness
from qa_core.fairness import Caller, CallerBound, FairWorker, TooManyRequests, take_turn

STRANGER, VISITOR = Caller("203.0.113.7", "s1"), Caller("198.51.100.9", "v1")


def test_turns_go_round_the_addresses_then_their_sessions():
    line: OrderedDict = OrderedDict()
    for address, session, name in (("a", "1", "a1-first"), ("a", "1", "a1-second"), ("a", "2", "a2"),
                                   ("b", "1", "b1"), ("a", "3", "a3")):
        task = fairness._Task(lambda: None, Future(), address, came=0, ahead=0)
        line.setdefault(address, OrderedDict()).setdefault(session, deque()).append(task)
        task.future.name = name
    order = []
    while line:
        address, sessions, task = take_turn(line)
        order.append(task.future.name)
        if sessions:
            line[address] = sessions  # back in line, as the worker puts it once the call returns
    # a caller with many sessions on one address gets that address's turns, not one per session
    assert order == ["a1-first", "b1", "a2", "a3", "a1-second"]


def test_one_callers_many_calls_wait_behind_anothers_one():
    worker, gate, order = FairWorker("test-fair"), threading.Event(), []

    def work(name: str, wait: bool = False) -> str:
        if wait:
            gate.wait(10)
        order.append(name)
        return name

    first = worker.submit(STRANGER, work, "s0", True)  # holds the thread until every call below is queued
    stranger = [worker.submit(STRANGER, work, f"s{i}") for i in range(1, 6)]
    visitor = worker.submit(VISITOR, work, "v")
    gate.set()
    assert [f.result(10) for f in (first, *stranger, visitor)] == ["s0", "s1", "s2", "s3", "s4", "s5", "v"]
    assert order == ["s0", "v", "s1", "s2", "s3", "s4", "s5"]  # the visitor's turn came after one of the stranger's


def test_a_caller_over_its_bound_is_refused_at_once_and_errors_reach_their_caller():
    worker, gate = FairWorker("test-bound", max_in_flight=2, what="questions"), threading.Event()
    with ThreadPoolExecutor(3) as pool:
        held = [pool.submit(worker.run, STRANGER, gate.wait, 10) for _ in range(2)]
        time.sleep(0.2)
        started = time.perf_counter()
        with pytest.raises(TooManyRequests, match=r"already have 2 questions .*at a time; ask again"):
            worker.run(STRANGER, time.sleep, 0)
        assert time.perf_counter() - started < 0.1
        other = pool.submit(worker.run, Caller("203.0.113.7", "s2"), len, "ok")  # another session is admitted
        gate.set()
        assert [f.result(10) for f in held] == [True, True] and other.result(10) == 2
    with pytest.raises(ZeroDivisionError):
        worker.run(STRANGER, divmod, 1, 0)
    assert worker.run(STRANGER, len, "again") == 5  # failures and answers both give their place back
    with pytest.raises(ValueError, match="max_in_flight must be at least 1, got 0"):
        FairWorker("test-none", max_in_flight=0)


def test_a_refusal_names_the_setting_in_the_log_for_the_host_not_to_the_visitor(caplog):
    """Found by a tester: a public server's refusal showed the visitor QA_MAX_CALLER_REQUESTS, which only the host
    can set."""
    worker, gate = FairWorker("test-named", max_in_flight=2, what="explanations"), threading.Event()
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(worker.run, STRANGER, gate.wait, 10) for _ in range(2)]
        time.sleep(0.2)
        with caplog.at_level(logging.WARNING, logger="qa_core.fairness"):
            with pytest.raises(TooManyRequests, match="already have 2 explanations") as refused:
                worker.run(STRANGER, time.sleep, 0)
        gate.set()
        assert [f.result(10) for f in held] == [True, True]
    assert "QA_" not in str(refused.value)
    assert "2 explanations in flight" in caplog.text and "(QA_MAX_CALLER_REQUESTS)" in caplog.text


def test_calls_of_another_kind_take_turns_on_the_thread_within_a_bound_of_their_own():
    """Analyses of a run's records run on the model thread, in turns with the questions: a caller's analyses count
    against their own bound, so that a page's few at once never eat into its questions (nor these into them)."""
    worker, gate = FairWorker("test-kinds", max_in_flight=1, what="questions"), threading.Event()
    analyses = CallerBound("test-analyses", 1, "analyses")

    async def both() -> tuple[bool, int]:
        question = asyncio.ensure_future(worker.run_in_turn(STRANGER, gate.wait, 10))
        analysis = asyncio.ensure_future(worker.run_in_turn(STRANGER, len, "abc", bound=analyses))
        await asyncio.sleep(0.2)  # both admitted and in line
        with pytest.raises(TooManyRequests, match="already have 1 analyses"):
            await worker.run_in_turn(STRANGER, len, "x", bound=analyses)
        with pytest.raises(TooManyRequests, match="already have 1 questions"):
            await worker.run_in_turn(STRANGER, len, "x")
        assert not analysis.done()  # one thread: it waits for the question running
        gate.set()
        return await question, await analysis
    assert asyncio.run(both()) == (True, 3)
    assert asyncio.run(worker.run_in_turn(STRANGER, len, "ab", bound=analyses)) == 2  # its place given back


def test_the_worker_thread_is_one_and_is_let_go_when_idle(monkeypatch):
    monkeypatch.setattr(fairness, "IDLE_S", 0.2)
    worker = FairWorker("test-idle")
    threads = {worker.run(Caller(str(i)), threading.current_thread) for i in range(5)}
    assert len(threads) == 1 and next(iter(threads)).name == "test-idle"
    time.sleep(0.5)
    assert not next(iter(threads)).is_alive()
    assert worker.run(STRANGER, len, "back") == 4  # a new call starts a new thread


BUSY_AT_EXIT = """
import time, torch
from qa_core.fairness import Caller, FairWorker
def compute():
    x = torch.randn(256, 256)
    for _ in range(400):
        x = torch.tanh(x @ x)
worker = FairWorker("qa-model")
running = worker.submit(Caller("a"), compute)
waiting = worker.submit(Caller("b"), compute)
while not running.running():
    time.sleep(0.01)
"""  # the server's main thread ends while the model thread computes an answer and another waits


def test_a_process_ending_mid_answer_exits_cleanly():
    """At exit the model thread finishes the call it runs and drops the ones waiting; stopped inside torch, its
    daemon thread aborted the process."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", BUSY_AT_EXIT], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_hosts_debug_log_counts_only_calls_that_ran(caplog):
    worker, entered, gate = FairWorker("test-count"), threading.Event(), threading.Event()
    caplog.set_level(logging.DEBUG, logger="qa_core.fairness")
    held = worker.submit(STRANGER, lambda: entered.set() or gate.wait(10))
    assert entered.wait(10)  # counted as started before the calls below come
    gone = worker.submit(VISITOR, str, "gone")
    after = worker.submit(VISITOR, str, "after")
    gone.cancel()  # its caller stopped waiting before its turn
    gate.set()
    assert held.result(10) and after.result(10) == "after"
    started = [r.getMessage() for r in caplog.records if "started after" in r.getMessage()]
    assert len(started) == 2
    assert "a call of 198.51.100.9 started after 0 others" in started[1]  # the cancelled call never started


def test_sessions_one_address_makes_up_share_a_bound_of_the_address():
    """Found in review: the bound counted each (address, session), and a caller picks its sessions, so one address
    could have any number of calls in flight by making up sessions; visitors behind one proxy still get theirs."""
    from contextlib import ExitStack

    bound = CallerBound("test-address", max_in_flight=2, what="questions")
    with ExitStack() as held:
        for i in range(fairness.ADDRESS_SESSIONS * 2):
            held.enter_context(bound.admitted(Caller(STRANGER.address, f"made-up-{i}")))
        with pytest.raises(TooManyRequests, match=r"your address already has 16 questions .*at a time"):
            held.enter_context(bound.admitted(Caller(STRANGER.address, "one-more")))
        with bound.admitted(VISITOR):  # another address is not held back
            pass
    with bound.admitted(Caller(STRANGER.address, "one-more")):  # all returned: the address is admitted again
        pass
