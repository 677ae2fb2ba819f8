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
"""The server's own threads for admin downloads: every disk read and clean-up of a download.

Why: the threads a download arrives on are shared. A range request is a cell request
callback in the connection manager's frame pool, which also carries every site's
heartbeats and tasks and every admin command; a direct response runs on the aiohttp
event loop of the same traffic; upstream's DownloadService chunks are stream callbacks
of the admin commands' pool. A download that reads the disk, or waits for its pace, in
one of those holds back everything else (issue 21: 170 paced ranges filled the frame pool
and project_admin's list_jobs took seconds). So those threads only check and queue a
download's request (in memory), and the work happens here: a few threads of their own,
whose exhaustion delays downloads and nothing else.
"""

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

THREADS = 4  # a 2-core host reads a 2 MiB range from the page cache in about a millisecond

log = logging.getLogger(__name__)
_lock = threading.Lock()
_pool = None


def pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="fork_download")
        return _pool


def submit(fn: Callable, *args) -> Future:
    """Run ``fn(*args)`` in a download thread; an exception is logged, never lost silently."""

    def run():
        try:
            return fn(*args)
        except Exception as e:
            log.error(f"download work {getattr(fn, '__name__', fn)} failed: {type(e).__name__}: {e}")
            raise

    return pool().submit(run)
