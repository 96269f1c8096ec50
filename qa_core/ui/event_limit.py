"""A bound on the events one address sends a public server's queue: its excess is refused before it takes room."""
# Gradio's queue is one line for every visitor, first come, first served, of QUEUE_SIZE events, and starts at most
# max_threads of them at once: a caller's bound in flight (fairness.CallerBound) is checked only when its event
# starts, so one address sending hundreds of events at once filled the queue ("Queue is full" for everyone else)
# and held the events that start, however fast the bound then refused them.

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from qa_core.settings import Settings
from qa_core.ui.request_limit import refuse

logger = logging.getLogger(__name__)

BURST_S = 5.0  # an address may send this many seconds' worth of events at once (a page load, a picked run)
TRACKED_ADDRESSES = 10_000  # past this many, addresses whose budget is whole again are forgotten
QUEUE_PATHS = ("/gradio_api/queue/join", "/gradio_api/call/")  # where an event joins the queue (POST)


class EventBudget:
    """A token bucket per address: `per_s` events a second on average, BURST_S seconds' worth at once."""

    def __init__(self, per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not per_s > 0:
            raise ValueError(f"QA_MAX_ADDRESS_EVENTS_PER_S must be above 0, got {per_s}")
        self.per_s, self.burst, self._clock = per_s, max(1.0, per_s * BURST_S), clock
        self._budgets: dict[str, tuple[float, float]] = {}  # address: (events left, when counted)

    def take(self, address: str) -> bool:
        """Whether `address` may send one more event now; it is counted if so."""
        now = self._clock()
        left, then = self._budgets.pop(address, (self.burst, now))  # put back last: the most recently seen
        left = min(self.burst, left + (now - then) * self.per_s)
        taken = left >= 1.0
        self._budgets[address] = (left - 1.0 if taken else left, now)
        if len(self._budgets) > TRACKED_ADDRESSES:
            self._forget(now)
        return taken

    def _forget(self, now: float) -> None:
        """The addresses whose budget is whole again; then, while over half as many are left, the least recently
        seen (a fresh budget for them), so that the next look over all of them is half as many addresses away."""
        whole = [a for a, (left, then) in self._budgets.items() if left + (now - then) * self.per_s >= self.burst]
        for address in whole:
            del self._budgets[address]
        while len(self._budgets) > TRACKED_ADDRESSES // 2:
            del self._budgets[next(iter(self._budgets))]


class LimitEvents:
    """Refuses with 429 an event (a POST joining the queue) past its address's EventBudget; everything else passes.
    The address is the one uvicorn reports, as fairness.Caller's (behind a trusted proxy, the visitor's)."""

    def __init__(self, app: ASGIApp, per_s: float) -> None:
        self.app, self.budget = app, EventBudget(per_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        joins = (scope["type"] == "http" and scope["method"] == "POST"
                 and any(path in scope["path"] for path in QUEUE_PATHS))
        address = (scope.get("client") or ("",))[0]
        if joins and not self.budget.take(address):
            # the setting is named to the host, in the log: a visitor cannot change it
            logger.warning("refused an event of an address beyond %g a second (QA_MAX_ADDRESS_EVENTS_PER_S)",
                           self.budget.per_s)
            return await refuse(send, 429, "too many requests from your address at once; wait a few seconds, "
                                           "then ask again")
        return await self.app(scope, receive, send)


def event_limit_middleware(settings: Settings) -> list[Middleware]:
    """For launch(app_kwargs={"middleware": ...}), beside the body limit: on a public server only."""
    return [Middleware(LimitEvents, per_s=settings.max_address_events_per_s)] if settings.public else []
