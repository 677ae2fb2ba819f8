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
"""A plain HTTPS response body for a component download, on the server's own listener.

Why: every byte of a range transfer crosses FLARE's per-message path twice (websocket
frame, SFM frame, cell message, thread hand-offs, all in Python under one GIL per
process). On a 2-core host that caps a verified download near 300 MB/s however the ranges
are sized (docs/performance.md). One HTTP response over the same TLS connection setup
skips all of it: the server writes the file in large blocks and the admin reads them
straight into reused buffers.

What is reachable here, and by whom: the aiohttp listener the clients and admins already
use (the same host, port and certificates, so no new port for firewalls or Kubernetes
services), one route, and only transfers the admin server opened after authorizing a
``download_job_component`` command. A request names its transfer by the 128-bit random
id that command returned over the admin's authenticated session; with mTLS the client
certificate must be the very one (sha256 fingerprint) the admin's session logged in
with. Anything else gets a 4xx with the reason, and the admin client falls back to the
range transfer.

Nothing of a download waits on the event loop, which carries the sites' tasks and
heartbeats too: the file is opened, read and closed in the download threads
(download_threads), and a block waits for its turn on the pace (admin_download_rate_limit,
shared fairly between accounts with the range replies: download_pacing) by awaiting a
future the pacer's thread resolves.

Bounded: a transfer has at most one response at a time (a second GET gets 409 and the
first goes on: replacing it would let a second reader cut the first); a block the reader
does not take within admin_download_response_timeout closes the response; ending the
transfer (done, cancelled, expired, logout) cuts its response at once; and the number of
responses per session and server follows the download limits (the range server's
transfers enforce them). The descriptor a response reads from is opened by its first
byte and closed with it.

A download that resumes (the admin kept a verified prefix) names its first missing byte
in ``OFFSET_HEADER``; the response then carries the rest only (an offset outside the
file gets 416).

The driver calls ``add_direct_download_route`` (a two-line patch) when it builds its
aiohttp application; the admin server registers where transfers are looked up. Nothing
here imports the server, so the fuel layer stays below it.
"""

import asyncio
import hashlib
import logging
import threading
from typing import Callable, Optional

from nvflare.fuel.hci.security import get_certificate_common_name
from nvflare.fuel.hci.server import download_pacing, download_threads

ROUTE = "/nvflare-fork/component"
TRANSFER_HEADER = "X-NVFlare-Fork-Transfer"
OFFSET_HEADER = "X-NVFlare-Fork-Offset"  # a resumed download: the body starts at this byte
BLOCK = 1024 * 1024

UNKNOWN = "no such transfer: it ended, expired, or belongs to another admin"

log = logging.getLogger(__name__)

_lock = threading.Lock()
_lookup: Optional[Callable] = None
_listeners = 0
_response_timeout = 60.0  # admin_download_response_timeout; the admin server sets it


def set_transfer_lookup(lookup: Callable) -> None:
    """``lookup(transfer_id)`` returns the open transfer (see DirectSource) or None."""
    global _lookup
    with _lock:
        _lookup = lookup


def available() -> bool:
    """True when this process serves the route on at least one listener."""
    with _lock:
        return _listeners > 0


def add_direct_download_route(app) -> None:
    """Add the route to an aiohttp application the driver is about to serve."""
    global _listeners
    app.router.add_get(ROUTE, _handle)
    with _lock:
        _listeners += 1


class ResponseBusy(Exception):
    """The transfer (or its session, or the server) cannot take another response now."""


BUSY = (
    "this transfer already has a response in progress: one response per transfer "
    "(finish or close that one, or continue by ranges)"
)


class DirectSource:
    """What the route needs from an open transfer (the range server's transfers have it)."""

    size: int
    user: str
    fingerprint: Optional[str]  # sha256 (hex) of the certificate the admin logged in with

    def begin_response(self, abort: Callable[[], None]) -> None:
        """Claim the transfer's one response; ``abort()`` cuts it when the transfer ends.

        Raises ResponseBusy (with the reason) if it cannot, LookupError if it ended,
        OSError if the file cannot be opened.
        """
        raise NotImplementedError

    def read_response(self, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def end_response(self) -> None:
        raise NotImplementedError

    def touch(self, served: int) -> None:
        """The admin is receiving: keep the transfer from expiring; count ``served`` bytes."""
        raise NotImplementedError


def set_response_timeout(seconds: float) -> None:
    """How long one block may wait for the admin to take it before the response is closed."""
    global _response_timeout
    with _lock:
        _response_timeout = seconds


def _refuse(status: int, reason: str):
    from aiohttp import web

    return web.Response(status=status, text=reason + "\n")


def _peer(request) -> Optional[tuple]:
    """(CN, sha256 of the certificate) of the TLS client, or None on a listener without TLS."""
    transport = request.transport
    if transport is None or transport.get_extra_info("sslcontext") is None:
        return None  # no TLS on this listener: the transfer id alone, like every other message here
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    cn = get_certificate_common_name(transport.get_extra_info("peercert")) or ""
    return cn, (hashlib.sha256(der).hexdigest() if der else "")


def _certificate_refusal(transfer_id: str, transfer, peer) -> Optional[str]:
    cn, fingerprint = peer
    if cn != transfer.user:
        log.warning(f"direct download of transfer {transfer_id} refused: certificate {cn!r} is not {transfer.user!r}")
        return f"this transfer belongs to {transfer.user}, not to the certificate's {cn or 'holder'}"
    if not transfer.fingerprint or fingerprint != transfer.fingerprint:
        log.warning(
            f"direct download of transfer {transfer_id} refused: certificate sha256 {fingerprint[:16]} is not the "
            f"one {transfer.user} logged in with ({(transfer.fingerprint or 'unknown')[:16]})"
        )
        return (
            f"this transfer belongs to the certificate {transfer.user} logged in with "
            f"(sha256 {(transfer.fingerprint or 'unknown')[:16]}...), not to this one (sha256 {fingerprint[:16]}...)"
        )
    return None


async def _handle(request):
    from aiohttp import web

    transfer_id = request.headers.get(TRANSFER_HEADER, "")
    with _lock:
        lookup, timeout = _lookup, _response_timeout
    transfer = lookup(transfer_id) if (lookup and transfer_id) else None
    if transfer is None:
        return _refuse(404, UNKNOWN)
    peer = _peer(request)
    if peer is not None:
        refusal = _certificate_refusal(transfer_id, transfer, peer)
        if refusal:
            return _refuse(403, refusal)

    loop = asyncio.get_running_loop()
    transport = request.transport

    def abort():
        # from the thread that ended the transfer: cut the connection, buffered bytes too
        loop.call_soon_threadsafe(transport.abort)

    start = request.headers.get(OFFSET_HEADER, "0")
    if not (start.isdigit() and int(start) < max(transfer.size, 1)):
        return _refuse(416, f"{OFFSET_HEADER} {start[:20]!r} is not a byte offset below {transfer.size}")
    try:
        await loop.run_in_executor(download_threads.pool(), transfer.begin_response, abort)  # opens the file
    except LookupError:
        return _refuse(404, UNKNOWN)
    except ResponseBusy as e:
        log.warning(f"direct download of transfer {transfer_id} refused: {e}")
        return _refuse(409, str(e))
    except OSError as e:
        return _refuse(410, f"cannot read the component: {e}")
    try:
        return await _send(request, transfer_id, transfer, timeout, int(start))
    finally:
        await loop.run_in_executor(download_threads.pool(), transfer.end_response)


async def _send(request, transfer_id: str, transfer, timeout: float, offset: int = 0):
    from aiohttp import web

    length = str(transfer.size - offset)
    response = web.StreamResponse(
        status=200, headers={"Content-Type": "application/octet-stream", "Content-Length": length}
    )
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(response.prepare(request), timeout)
        while offset < transfer.size:
            try:
                data = await loop.run_in_executor(
                    download_threads.pool(), transfer.read_response, offset, min(BLOCK, transfer.size - offset)
                )
            except OSError as e:
                # The body is cut short; the admin resumes by ranges and gets the reason there.
                log.warning(f"direct download of transfer {transfer_id} stopped at {offset}: {e}")
                request.transport.abort()
                return response
            if not data:
                log.warning(f"direct download of transfer {transfer_id} stopped at {offset}: the file got shorter")
                request.transport.abort()
                return response
            # admin_download_rate_limit: wait for this block's turn on the server-wide pace,
            # off the loop's back (the loop serves cell traffic meanwhile).
            await download_pacing.wait(transfer.user, transfer_id, len(data))
            # A reader that stops taking bytes would keep this block (and the socket's
            # buffers) forever: give each block ``timeout`` seconds.
            await asyncio.wait_for(response.write(data), timeout)
            offset += len(data)
            transfer.touch(len(data))
        await asyncio.wait_for(response.write_eof(), timeout)
    except asyncio.TimeoutError:
        log.warning(
            f"direct response for transfer {transfer_id} closed at {offset} of {transfer.size} bytes: the admin took "
            f"no bytes for {timeout:g} s (admin_download_response_timeout)"
        )
        if request.transport is not None:
            request.transport.abort()
    except (ConnectionError, RuntimeError) as e:
        # The admin went away, its connection broke, or the transfer ended and cut it;
        # a live admin resumes by ranges if it can.
        log.warning(f"direct download of transfer {transfer_id} stopped at {offset}: {type(e).__name__}: {e}")
    return response
