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
"""The pacer without a server: who is sent when (download_pacing).

Real time, real threads: each block records when the pacer let it go. Rates are chosen so
that the expected times are tenths of seconds apart and the tolerances generous: on a
loaded host the pacer's thread wakes late (0.15 s was seen at load 12), and a late start
shifts the blocks after it."""

import asyncio
import contextlib
import threading
import time

import pytest

from nvflare.fuel.hci.server import download_pacing
from nvflare.fuel.hci.server.download_pacing import MAX_WAIT, REQUEST_COST, FairPacer

MB = 1000 * 1000
LATE = 0.35  # seconds the pacer's thread may wake late on a loaded host


class Clock:
    """Submits blocks and records (label, seconds after the first submit) as each goes."""

    def __init__(self, pacer: FairPacer):
        self.pacer = pacer
        self.t0 = time.monotonic()
        self.sent = []
        self.lock = threading.Lock()
        self.threads = []

    def submit(self, account: str, key: str, n: int, label: str = ""):
        def go():
            with self.lock:
                self.sent.append((label or key, time.monotonic() - self.t0))
            self.threads.append(threading.current_thread().name)

        self.pacer.submit(account, key, n, go)

    @contextlib.contextmanager
    def at_once(self):
        """Submit several blocks as one moment: the pacer's thread cannot send any of them
        before the last is queued (a descheduled test thread on a loaded host otherwise lets
        the first account's blocks go before the second account's arrive)."""
        with self.pacer._cond:
            yield

    def wait_for(self, count: int, timeout: float = 30) -> list:
        deadline = time.monotonic() + timeout
        while len(self.sent) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.sent) == count, self.sent
        return self.sent

    def times(self, label: str) -> list:
        return [t for name, t in self.sent if name == label]


@pytest.fixture
def pacer():
    p = FairPacer()
    p.set_jobs_running_check(lambda: True)
    p.set_rate_limit(1 * MB)
    return p


def test_one_account_alone_gets_the_whole_rate(pacer):
    clock = Clock(pacer)
    for _ in range(4):
        clock.submit("lead", "t1", MB // 2)
    times = [t for _, t in clock.wait_for(4)]
    assert times[0] < LATE  # an idle pacer has no saved-up credit, and no debt either
    for i, t in enumerate(times):
        assert t - times[0] == pytest.approx(0.5 * i, abs=LATE), times
    assert set(clock.threads) == {"download_pacer"}  # never the submitter's thread


def test_no_block_waits_longer_than_max_wait(pacer):
    """Past MAX_WAIT the admin's progress timeout would fail the download: the cap yields."""
    clock = Clock(pacer)
    for _ in range(6):
        clock.submit("lead", "t1", MB)
    times = [t for _, t in clock.wait_for(6)]
    assert MAX_WAIT == 2.0
    assert times[:3] == pytest.approx([0.0, 1.0, 2.0], abs=LATE)
    assert times[3:] == pytest.approx([MAX_WAIT] * 3, abs=LATE)


def test_a_small_range_does_not_wait_for_another_accounts_backlog(pacer):
    """Issue 21: one account booked the timeline seconds ahead and every 1-byte range of
    everyone waited the full 2 s. Now another account's range waits for at most the block
    being sent, and a block is charged at least REQUEST_COST (a 1-byte flood is paced too)."""
    pacer.set_rate_limit(10 * MB)
    clock = Clock(pacer)
    for i in range(8):
        clock.submit("attacker", "a1", 2 * MB, label="attacker")  # 1.6 s of the link
    time.sleep(0.05)
    clock.submit("other", "b1", 1, label="other")
    clock.wait_for(9)
    (other,) = clock.times("other")
    attacker = clock.times("attacker")
    assert other < 0.25 + LATE, clock.sent  # behind the attacker's block on the link (0.2 s), not its 1.6 s
    assert attacker[-1] > 1.2, clock.sent
    assert REQUEST_COST == 64 * 1024


def test_a_flood_of_one_byte_ranges_is_paced_by_request_cost(pacer):
    pacer.set_rate_limit(10 * MB)
    clock = Clock(pacer)
    for _ in range(40):
        clock.submit("attacker", "a1", 1)
    times = [t for _, t in clock.wait_for(40)]
    # 40 x 64 KiB at 10 MB/s: 0.26 s, not 40 bytes' worth (nothing)
    assert times[-1] == pytest.approx(39 * REQUEST_COST / (10 * MB), abs=LATE)


def test_busy_accounts_share_the_rate_equally(pacer):
    pacer.set_rate_limit(10 * MB)
    clock = Clock(pacer)
    with clock.at_once():
        for _ in range(6):
            clock.submit("a", "a1", MB, label="a")
        for _ in range(6):
            clock.submit("b", "b1", MB, label="b")
    order = [name for name, _ in clock.wait_for(12)]
    # b's blocks interleave with a's from the start, though a queued all of its blocks first
    assert order[:4] in (["a", "b", "a", "b"], ["a", "a", "b", "a"]), order
    first_half = order[:6]
    assert first_half.count("b") >= 2, order


def test_an_accounts_transfers_share_its_one_share(pacer):
    """More transfers (or sessions) do not buy an account a bigger share."""
    pacer.set_rate_limit(10 * MB)
    clock = Clock(pacer)
    with clock.at_once():
        for i in range(6):
            clock.submit("many", f"m{i % 3}", MB, label="many")  # three transfers, two blocks each
        for _ in range(6):
            clock.submit("one", "o1", MB, label="one")
    order = [name for name, _ in clock.wait_for(12)]
    assert order[:8].count("one") >= 3, order


def test_no_pace_without_a_running_job_or_without_a_limit(pacer):
    pacer.set_jobs_running_check(lambda: False)
    clock = Clock(pacer)
    for _ in range(3):
        clock.submit("lead", "t1", 10 * MB)
    assert len(clock.sent) == 3  # at once, in the submitter's thread
    pacer.set_jobs_running_check(lambda: True)
    pacer.set_rate_limit(0)
    for _ in range(3):
        clock.submit("lead", "t1", 10 * MB)
    assert len(clock.sent) == 6
    assert set(clock.threads) == {threading.current_thread().name}


def test_queued_blocks_go_when_the_job_ends(pacer):
    running = [True]
    pacer.set_jobs_running_check(lambda: running[0])
    clock = Clock(pacer)
    for _ in range(4):
        clock.submit("lead", "t1", MB)  # 4 s of the link at 1 MB/s
    time.sleep(0.2)
    running[0] = False
    clock.submit("lead", "t1", 1)  # wakes the pacer: nothing to protect any more
    times = [t for _, t in clock.wait_for(5)]
    assert max(times) < 1.0, times


def test_the_direct_route_waits_on_its_loop_without_blocking_it(monkeypatch):
    pacer = FairPacer()
    pacer.set_jobs_running_check(lambda: True)
    pacer.set_rate_limit(1 * MB)
    for name in ("paced", "submit"):
        monkeypatch.setattr(download_pacing, name, getattr(pacer, name))

    async def main():
        ticks = []

        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.05)

        tick = asyncio.ensure_future(ticker())
        started = time.monotonic()
        for _ in range(3):
            await download_pacing.wait("lead", "t1", MB // 2)
        took = time.monotonic() - started
        tick.cancel()
        return took, ticks

    took, ticks = asyncio.run(main())
    assert took == pytest.approx(1.0, abs=LATE)  # blocks at 0, 0.5 and 1.0 s
    assert len(ticks) >= 15  # the loop ran on while the blocks waited
