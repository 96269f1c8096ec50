"""Fair turns on one worker thread: callers served round-robin, each with a bound on its requests in flight."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from qa_core.runtime import close_at_exit

logger = logging.getLogger(__name__)

IDLE_S = 60.0  # a worker thread with nothing to do ends after this long; the next call starts another
EXIT_WAIT_S = 30.0  # at interpreter exit, how long a worker's running call may take to return
# An address may have this many callers' bound in flight: visitors behind one proxy or NAT each get theirs, while a
# caller making up sessions (it picks its own) does not get a bound per session.
ADDRESS_SESSIONS = 8


@dataclass(frozen=True)
class Caller:
    """Who asks: the address the server saw (behind a proxy, the one uvicorn's trusted proxy headers give) and the
    Gradio session (one per page load or gradio_client.Client; a caller picks its own, so it costs nothing to
    have many: turns go to addresses first)."""

    address: str = ""
    session: str = ""


LOCAL = Caller()  # calls from inside this process (the CLI, scripts): one caller


class TooManyRequests(ValueError):
    """Refused at once: the caller already has as many requests in flight as it may."""


@dataclass(frozen=True)
class _Task:
    call: Callable[[], Any]
    future: Future
    address: str
    came: int  # how many calls the worker had started when this one came
    ahead: int  # how many calls were waiting when this one came


Sessions = OrderedDict[str, deque[_Task]]  # one address's waiting calls, by session, the next to serve first


class CallerBound:
    """At most max_in_flight requests of each caller in flight, and ADDRESS_SESSIONS times that of each address
    (None: any number); one more is refused at once, so that no caller fills the web server's request threads, or
    a line, with waiting calls."""

    def __init__(self, name: str, max_in_flight: int | None = None, what: str = "requests") -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self._name, self._max_in_flight, self._what = name, max_in_flight, what
        self._in_flight: dict[Caller | str, int] = {}  # by caller, and by address
        self._lock = threading.Lock()

    @contextmanager
    def admitted(self, caller: Caller) -> Iterator[None]:
        """Count one request of `caller` in flight for the block (a model load it waits for included); refused
        with TooManyRequests, before any work, when the caller or its address already has its most."""
        with self._lock:
            self._refuse_beyond_bound(caller)
            for key in (caller, caller.address):
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                for key in (caller, caller.address):
                    left = self._in_flight.pop(key) - 1
                    if left:
                        self._in_flight[key] = left

    def _refuse_beyond_bound(self, caller: Caller) -> None:
        if self._max_in_flight is None:
            return
        held, by_address = self._in_flight.get(caller, 0), self._in_flight.get(caller.address, 0)
        if held < self._max_in_flight and by_address < self._max_in_flight * ADDRESS_SESSIONS:
            return
        # the setting is named to the host, in the log: a visitor cannot change it
        logger.warning("%s refused a caller's request beyond %d %s in flight, %d from its address "
                       "(QA_MAX_CALLER_REQUESTS)", self._name, self._max_in_flight, self._what,
                       self._max_in_flight * ADDRESS_SESSIONS)
        if held >= self._max_in_flight:
            who, whom = f"you already have {held}", "one visitor"
        else:
            who, whom = f"your address already has {by_address}", "one address"
        raise TooManyRequests(f"{who} {self._what} waiting or in progress, the most this server takes from {whom} "
                              f"at a time; ask again once one has come back")


class FairWorker:
    """One thread that runs the calls submitted to it, taking turns between addresses and, within an address,
    between sessions; each caller's own calls run in the order it submitted them.

    An address being served waits outside the line until its call returns, then goes to the back: a call waits
    for the call running when it came and at most one call of each other address with calls waiting, however many
    those sent. With max_in_flight, a caller's request beyond that many is refused at once (admitted: a
    CallerBound)."""

    def __init__(self, name: str, max_in_flight: int | None = None, what: str = "requests") -> None:
        self.bound = CallerBound(name, max_in_flight, what)
        self._name = name
        self._line: OrderedDict[str, Sessions] = OrderedDict()  # addresses with calls waiting, next first
        self._serving: tuple[str, Sessions] | None = None  # the address out of the line while its call runs
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._started = self._waiting = 0  # calls started so far, and waiting now: for the host's debug log
        close_at_exit(self)

    def admitted(self, caller: Caller) -> AbstractContextManager[None]:
        """The worker's CallerBound.admitted."""
        return self.bound.admitted(caller)

    def submit(self, caller: Caller, call: Callable[..., Any], *args: Any) -> Future:
        """Queue call(*args) behind `caller`'s earlier calls, in its address's turn. It runs in the submitter's
        context, as asyncio.to_thread's calls do (a Gradio handler's gr.Warning finds its page there)."""
        future: Future = Future()
        call = functools.partial(contextvars.copy_context().run, call, *args)
        with self._ready:
            if self._closed:
                raise RuntimeError(f"{self._name} is closed: the server is shutting down")
            serving = self._serving is not None and self._serving[0] == caller.address
            sessions = self._serving[1] if serving else self._line.setdefault(caller.address, OrderedDict())
            task = _Task(call, future, caller.address, self._started, self._waiting)
            sessions.setdefault(caller.session, deque()).append(task)
            self._waiting += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
            self._ready.notify()
        return future

    def run(self, caller: Caller, call: Callable[..., Any], *args: Any) -> Any:
        """call(*args) on the worker thread in `caller`'s turn, admitted first; its result, or what it raised."""
        with self.admitted(caller):
            return self.submit(caller, call, *args).result()

    async def run_in_turn(self, caller: Caller, call: Callable[..., Any], *args: Any,
                          bound: CallerBound | None = None) -> Any:
        """run() for coroutines: the wait for the turn and the result holds no thread; a cancelled wait takes its
        call out of the line. bound: counted against it instead of the worker's own (calls of another kind)."""
        with (bound or self.bound).admitted(caller):
            return await asyncio.wrap_future(self.submit(caller, call, *args))

    def close(self, timeout: float | None = EXIT_WAIT_S) -> None:
        """Cancel the calls still waiting and wait (at most `timeout`) for the running one to return; later calls
        are refused. Done at interpreter exit (runtime.close_at_exit)."""
        with self._ready:
            self._closed = True
            for sessions in [*self._line.values(), *([self._serving[1]] if self._serving else [])]:
                for tasks in sessions.values():
                    for task in tasks:
                        task.future.cancel()
                sessions.clear()
            self._line.clear()
            self._ready.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _next(self) -> _Task | None:
        """The next call in turn, its address taken out of the line; None (the thread let go) after IDLE_S idle."""
        with self._ready:
            if self._serving is not None:  # the last call's address, back in line behind those who came meanwhile
                address, sessions = self._serving
                if sessions:
                    self._line[address] = sessions
                self._serving = None
            waiting = self._ready.wait_for(lambda: self._line or self._closed, IDLE_S)
            if not waiting or self._closed:  # idle for IDLE_S, or closed
                self._thread = None
                return None
            address, sessions, task = take_turn(self._line)
            self._serving = (address, sessions)
            self._waiting -= 1
            return task

    def _serve(self) -> None:
        while (task := self._next()) is not None:
            if not task.future.set_running_or_notify_cancel():  # its caller gave up waiting: not counted as started
                continue
            with self._ready:
                logger.debug("%s: a call of %s started after %d others; %d were waiting when it came", self._name,
                             task.address, self._started - task.came, task.ahead)
                self._started += 1
            try:
                task.future.set_result(task.call())
            except BaseException as err:  # the caller gets it; the worker keeps serving the others
                task.future.set_exception(err)


def take_turn(line: OrderedDict[str, Sessions]) -> tuple[str, Sessions, _Task]:
    """Take the first address out of the line: it, its sessions left (the served one now last, or gone when it has
    no more calls) and its first session's oldest call."""
    address, sessions = line.popitem(last=False)
    session, tasks = next(iter(sessions.items()))
    task = tasks.popleft()
    if tasks:
        sessions.move_to_end(session)
    else:
        del sessions[session]
    return address, sessions, task
