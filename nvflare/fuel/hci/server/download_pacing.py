# Copyright (c) 2026, the nvflare model fork authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""One server-wide pace for the bytes admins download while a job runs (admin_download_rate_limit),
shared fairly between accounts.

Why a pace: a download and a training job share the server's CPU. The direct route
encrypts on the aiohttp event loop that also carries every site's tasks and heartbeats,
and on a small host the download, its TLS and the admin's hashing take the cores the job
needs (bench/interference_bench.py; docs/performance.md). Capping the rate of all admin
downloads together bounds the CPU they take, whatever number of admins download at once.
With no job running there is nothing to protect, so downloads go at full speed (asked
for each block, so the pace starts and stops with the jobs).

Why fair: one shared timeline let one account book it seconds ahead (a few 2 MiB ranges)
so that every other block, even a 1-byte range, waited its full bound behind it (issue 21).
Here blocks queue per transfer and are sent in start-time fair queueing order: a block's
start tag is max(virtual time, its transfer's last finish tag) and its finish tag adds its
cost divided by its transfer's weight, where each account's backlogged transfers share
the weight 1 (so every account gets an equal share of the rate, split among its
transfers). The link sends the block with the smallest start tag whenever it is free, and
is then busy for cost / rate. A block so waits for the bytes of its own transfer queued
before it plus about one block of each other busy account: never for another account's
backlog. Work-conserving: one account alone gets the whole rate.

A block's cost is its bytes, but at least REQUEST_COST: a request costs the server a
message's work whatever its length, so a flood of 1-byte ranges is paced like larger
ones and cannot trade the byte rate for a message rate.

A block never waits more than MAX_WAIT: an admin gives up on a download whose next bytes
do not come within its progress timeout (5 s by default), so with very many downloads at
once a block past MAX_WAIT is sent anyway (outside the link's schedule, still charged to
its transfer's tags): the total may then exceed the cap; pacing slows downloads, it
never makes one fail.

Nothing here sleeps in a caller's thread. ``submit`` queues the block and returns; the
pacer's own thread calls ``go()`` when the block's turn comes (go must be quick: it hands
the block to the download threads or wakes the direct route's coroutine, see ``wait``).
"""

import asyncio
import itertools
import threading
import time
from collections import deque
from typing import Callable, Dict, Optional

MAX_WAIT = 2.0  # seconds; below the admin's default 5 s download progress timeout
REQUEST_COST = 64 * 1024  # bytes: the least a block costs on the pace


class _Block:
    __slots__ = ("start", "cost", "go", "deadline", "seq")

    def __init__(self, start: float, cost: int, go: Callable[[], None], deadline: float, seq: int):
        self.start = start
        self.cost = cost
        self.go = go
        self.deadline = deadline
        self.seq = seq


class _Flow:
    """The queued blocks of one transfer (one key), FIFO, and its last finish tag."""

    __slots__ = ("account", "queue", "finish")

    def __init__(self, account: str):
        self.account = account
        self.queue = deque()
        self.finish = 0.0


class FairPacer:
    """Start-time fair queueing of download blocks at one rate (see the module docstring)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._rate = 0.0  # bytes per second; 0: no limit
        self._jobs_running: Callable[[], bool] = lambda: True  # until the admin server tells how to know
        self._flows: Dict[str, _Flow] = {}
        self._backlogged: Dict[str, int] = {}  # account -> its flows with queued blocks
        self._vtime = 0.0
        self._link_free = 0.0  # time.monotonic() at which the link may send the next block
        self._queued = 0
        self._seq = itertools.count()
        self._thread: Optional[threading.Thread] = None

    # -- settings ------------------------------------------------------------------------
    def set_rate_limit(self, bytes_per_second: float) -> None:
        with self._cond:
            self._rate = float(bytes_per_second)
            self._cond.notify()

    def rate_limit(self) -> float:
        with self._cond:
            return self._rate

    def set_jobs_running_check(self, check: Callable[[], bool]) -> None:
        with self._cond:
            self._jobs_running = check
            self._cond.notify()

    def paced(self) -> bool:
        """Whether blocks are paced now (a limit is set and a job runs)."""
        with self._cond:
            rate, jobs_running = self._rate, self._jobs_running
        return rate > 0 and _safe(jobs_running)

    # -- blocks --------------------------------------------------------------------------
    def submit(self, account: str, key: str, n: int, go: Callable[[], None]) -> None:
        """Queue ``n`` bytes of transfer ``key`` (of ``account``); ``go()`` runs when they may be sent.

        Unpaced, ``go()`` runs at once in the caller's thread.
        """
        if not self.paced():
            with self._cond:
                if self._queued:  # the pace just ended: what waits goes now, too
                    self._cond.notify()
            _call(go)
            return
        with self._cond:
            flow = self._flows.get(key)
            if flow is None:
                flow = self._flows[key] = _Flow(account)
            if not flow.queue:
                self._backlogged[account] = self._backlogged.get(account, 0) + 1
            cost = max(int(n), REQUEST_COST)
            start = max(self._vtime, flow.finish)
            flow.finish = start + cost * self._backlogged[account]  # weight 1 / backlogged transfers
            flow.queue.append(_Block(start, cost, go, time.monotonic() + MAX_WAIT, next(self._seq)))
            self._queued += 1
            self._ensure_thread()
            self._cond.notify()

    def _ensure_thread(self):
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="download_pacer", daemon=True)
            self._thread.start()

    def _pop(self, flow: _Flow) -> _Block:
        block = flow.queue.popleft()
        self._queued -= 1
        if not flow.queue:
            left = self._backlogged.get(flow.account, 1) - 1
            if left:
                self._backlogged[flow.account] = left
            else:
                self._backlogged.pop(flow.account, None)
        return block

    def _due(self, now: float) -> list:
        """The blocks to send now (under the lock); also sets how long to wait for the next."""
        if not (self._rate > 0 and _safe(self._jobs_running)):
            return [self._pop(f) for f in self._flows.values() for _ in range(len(f.queue))]
        due = []
        for flow in self._flows.values():  # past MAX_WAIT: sent outside the link's schedule
            while flow.queue and flow.queue[0].deadline <= now:
                due.append(self._pop(flow))
        if now >= self._link_free:
            heads = [f for f in self._flows.values() if f.queue]
            if heads:
                flow = min(heads, key=lambda f: (f.queue[0].start, f.queue[0].seq))
                block = self._pop(flow)
                self._vtime = block.start
                self._link_free = max(self._link_free, now) + block.cost / self._rate
                due.append(block)
        return due

    def _forget_idle_flows(self):
        if not self._queued:
            # a busy period ended: virtual time catches up, no transfer keeps a debt or credit
            self._vtime = max([self._vtime] + [f.finish for f in self._flows.values()])
            self._flows.clear()
            return
        for key in [k for k, f in self._flows.items() if not f.queue and f.finish <= self._vtime]:
            del self._flows[key]

    def _next_wake(self, now: float) -> Optional[float]:
        if not self._queued:
            return None
        if not (self._rate > 0 and _safe(self._jobs_running)):
            return 0.0
        deadlines = [f.queue[0].deadline for f in self._flows.values() if f.queue]
        return max(0.0, min([self._link_free] + deadlines) - now)

    def _run(self):
        while True:
            with self._cond:
                now = time.monotonic()
                due = self._due(now)
                self._forget_idle_flows()
                if not due:
                    self._cond.wait(self._next_wake(now))
                    continue
            for block in due:
                _call(block.go)

    def queued(self) -> int:
        with self._cond:
            return self._queued


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return True  # unknown: paced


def _call(go: Callable[[], None]) -> None:
    try:
        go()
    except Exception:  # a go that fails only loses its own block; the pacer goes on
        pass


_pacer = FairPacer()
set_rate_limit = _pacer.set_rate_limit
rate_limit = _pacer.rate_limit
set_jobs_running_check = _pacer.set_jobs_running_check
paced = _pacer.paced
submit = _pacer.submit


async def wait(account: str, key: str, n: int) -> None:
    """Wait, on the running event loop and without blocking it, until ``n`` bytes may be sent."""
    if not paced():
        return
    loop = asyncio.get_running_loop()
    turn = loop.create_future()

    def go():
        loop.call_soon_threadsafe(lambda: turn.done() or turn.set_result(None))

    submit(account, key, n, go)
    await turn
