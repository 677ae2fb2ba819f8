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
"""One server-wide pace for the bytes admins download while a job runs (admin_download_rate_limit).

Why: a download and a training job share the server's CPU. The direct route encrypts
on the aiohttp event loop that also carries every site's tasks and heartbeats, and on a
small host the download, its TLS and the admin's hashing take the cores the job needs
(bench/interference_bench.py measures it; docs/performance.md). Capping the rate of all
admin downloads together bounds the CPU they take, whatever number of admins download
at once. With no job running there is nothing to protect, so downloads go at full speed
(the pace is asked for each block, so it starts and stops with the jobs).

How: a shared timeline. Each block (a direct response's block, a range reply) reserves
``n / rate`` seconds after the previous reservation ends and waits until its slot
starts; an idle pacer has no saved-up credit, so a burst is one block. The direct route
waits with ``asyncio.sleep`` (the loop goes on serving cell traffic meanwhile); a range
reply waits in its frame thread before it is sent.

A block never waits more than MAX_WAIT: an admin gives up on a download whose next bytes
do not come within its progress timeout (5 s by default), and every block of every open
download is on the one timeline (64 downloads x 4 ranges of 1 MiB would be 9 s at 30 MB/s).
So with very many downloads at once the total may exceed the cap; pacing slows downloads,
it never makes one fail.
"""

import threading
import time
from typing import Callable

_lock = threading.Lock()
_rate = 0.0  # bytes per second; 0: no limit
_next_free = 0.0
MAX_WAIT = 2.0  # seconds; below the admin's default 5 s download progress timeout
_jobs_running: Callable[[], bool] = lambda: True  # until the admin server tells how to know


def set_jobs_running_check(check: Callable[[], bool]) -> None:
    """``check()`` says whether a job runs on this server now (the pace applies only then)."""
    global _jobs_running
    with _lock:
        _jobs_running = check


def set_rate_limit(bytes_per_second: float) -> None:
    """0 turns pacing off. The admin server sets it from its settings at startup."""
    global _rate
    with _lock:
        _rate = float(bytes_per_second)


def rate_limit() -> float:
    with _lock:
        return _rate


def reserve(n: int) -> float:
    """Book ``n`` bytes on the shared timeline; the seconds to wait before sending them."""
    global _next_free
    with _lock:
        rate, jobs_running = _rate, _jobs_running
    if rate <= 0 or not jobs_running():
        return 0.0
    with _lock:
        now = time.monotonic()
        start = max(now, min(_next_free, now + MAX_WAIT))
        _next_free = start + n / rate
        return start - now


def pace(n: int) -> None:
    """``reserve`` and wait, in a thread that may block."""
    delay = reserve(n)
    if delay > 0:
        time.sleep(delay)
