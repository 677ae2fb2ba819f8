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
"""Admin-client side of the range transfer: several ranges in flight, delivered in order.

One request at a time leaves both ends idle for a round trip per chunk; with a few in
flight the server reads and sends the next ranges while this side writes and hashes the
current one. Ranges are requested by offset, so a lost or late reply is simply asked for
again: the server returns the same bytes. Replies may complete in any order; ``sink``
gets them in file order, so the file can be written and hashed in one pass, and at most
``in_flight`` ranges are held in memory.

The defaults come from bench/download_bench.py on a 2-core host (docs/performance.md):
1 MiB ranges with 4 in flight were the fastest; larger ranges were no faster and cost
memory, and more in flight only added threads.
"""

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

from nvflare.apis.signal import Signal
from nvflare.fuel.f3.cellnet.cell import Cell
from nvflare.fuel.f3.cellnet.defs import MessageHeaderKey, ReturnCode
from nvflare.fuel.f3.message import Message
from nvflare.fuel.hci.job_component_defs import (
    END,
    LENGTH,
    MAX_LENGTH,
    OFFSET,
    RANGE_BUSY_CODE,
    RANGE_CHANNEL,
    RANGE_TOPIC,
    SOURCE_FQCN,
    TRANSFER_ID,
)

RANGE_LENGTH = 1024 * 1024
IN_FLIGHT = 4
ATTEMPTS = 4  # per range: the first request and three retries
RETRY_BACKOFF = 0.5  # seconds before the first retry; doubles each time

# Transport failures: the request or its reply may be lost, so asking again is safe; and
# the server's "too many ranges in flight" (a retried range whose first request it still
# serves): once that one is answered, the retry is admitted.
_RETRYABLE = {ReturnCode.TIMEOUT, ReturnCode.COMM_ERROR, ReturnCode.TARGET_UNREACHABLE, RANGE_BUSY_CODE}


class RangeRetryable(Exception):
    """The range did not arrive (timeout, lost connection); it may be requested again."""


class RangeRefused(Exception):
    """The server answered with an error; asking again would get the same answer."""


class RangeSource:
    """The ranges of one transfer that the server opened for this admin cell."""

    def __init__(self, cell: Cell, transfer: dict, timeout: float, abort_signal: Optional[Signal] = None):
        self.cell = cell
        self.server = transfer[SOURCE_FQCN]
        self.transfer_id = transfer[TRANSFER_ID]
        self.max_length = transfer[MAX_LENGTH]
        self.timeout = timeout
        self.abort_signal = abort_signal

    def _send(self, payload: dict, timeout: float):
        reply = self.cell.send_request(
            channel=RANGE_CHANNEL,
            topic=RANGE_TOPIC,
            target=self.server,
            request=Message(headers={}, payload={TRANSFER_ID: self.transfer_id, **payload}),
            timeout=timeout,
        )
        rc = reply.get_header(MessageHeaderKey.RETURN_CODE, ReturnCode.OK)
        if rc == ReturnCode.OK:
            return reply.payload
        error = reply.get_header(MessageHeaderKey.ERROR) or rc
        raise (RangeRetryable if rc in _RETRYABLE else RangeRefused)(error)

    def fetch(self, offset: int, length: int) -> bytes:
        data = self._send({OFFSET: offset, LENGTH: length}, self.timeout)
        if not isinstance(data, bytes) or len(data) != length:
            got = f"{len(data)} bytes" if isinstance(data, bytes) else type(data).__name__
            raise RangeRefused(f"asked for {length} bytes at offset {offset} but got {got}")
        return data

    def end(self, status: str):
        """Tell the server to release the transfer now instead of at its idle timeout."""
        try:
            self._send({END: status}, min(self.timeout, 5.0))
        except (RangeRetryable, RangeRefused):
            pass  # the server's idle timeout releases it


def _fetch_with_retries(fetch, offset: int, length: int, attempts: int, backoff: float, abort_signal) -> bytes:
    for attempt in range(attempts):
        try:
            return fetch(offset, length)
        except RangeRetryable as e:
            if attempt == attempts - 1:
                raise RangeRetryable(f"range at offset {offset} failed {attempts} times, last: {e}") from None
        deadline = time.time() + backoff * 2**attempt
        while time.time() < deadline:
            if abort_signal and abort_signal.triggered:
                raise RangeRefused("aborted")
            time.sleep(0.05)


def read_ranges(
    fetch: Callable[[int, int], bytes],
    size: int,
    sink: Callable[[bytes], None],
    range_length: int = RANGE_LENGTH,
    in_flight: int = IN_FLIGHT,
    attempts: int = ATTEMPTS,
    backoff: float = RETRY_BACKOFF,
    abort_signal: Optional[Signal] = None,
    start: int = 0,
):
    """Call ``sink`` with bytes start..size in file order, fetched ``in_flight`` ranges at a time.

    ``fetch(offset, length)`` returns exactly ``length`` bytes or raises RangeRetryable
    (requested again, up to ``attempts`` times) or any other exception (stops the read).
    """
    if size <= start:
        return
    offsets = iter(range(start, size, range_length))
    pending = deque()
    pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="component_range")

    def request_next():
        offset = next(offsets, None)
        if offset is not None:
            length = min(range_length, size - offset)
            pending.append(pool.submit(_fetch_with_retries, fetch, offset, length, attempts, backoff, abort_signal))

    try:
        for _ in range(in_flight):
            request_next()
        while pending:
            if abort_signal and abort_signal.triggered:
                raise RangeRefused("aborted")
            data = pending.popleft().result()
            request_next()  # keep in_flight requests going while this range is written
            sink(data)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
