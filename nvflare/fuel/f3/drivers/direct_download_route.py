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
certificate must also be the one of the admin who ran the command. Anything else gets a
4xx with the reason, and the admin client falls back to the range transfer.

The driver calls ``add_direct_download_route`` (a two-line patch) when it builds its
aiohttp application; the admin server registers where transfers are looked up. Nothing
here imports the server, so the fuel layer stays below it.
"""

import asyncio
import logging
import threading
from typing import Callable, Optional

from nvflare.fuel.hci.security import get_certificate_common_name

ROUTE = "/nvflare-fork/component"
TRANSFER_HEADER = "X-NVFlare-Fork-Transfer"
BLOCK = 1024 * 1024

UNKNOWN = "no such transfer: it ended, expired, or belongs to another admin"

log = logging.getLogger(__name__)

_lock = threading.Lock()
_lookup: Optional[Callable] = None
_listeners = 0


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


class DirectSource:
    """What the route needs from an open transfer (the range server's transfers have it)."""

    size: int
    user: str

    def read(self, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def touch(self, served: int) -> None:
        """The admin is receiving: keep the transfer from expiring; count ``served`` bytes."""
        raise NotImplementedError


def _refuse(status: int, reason: str):
    from aiohttp import web

    return web.Response(status=status, text=reason + "\n")


def _peer_name(request) -> Optional[str]:
    transport = request.transport
    if transport is None or transport.get_extra_info("sslcontext") is None:
        return None  # no TLS on this listener: the transfer id alone, like every other message here
    return get_certificate_common_name(transport.get_extra_info("peercert")) or ""


async def _handle(request):
    from aiohttp import web

    transfer_id = request.headers.get(TRANSFER_HEADER, "")
    with _lock:
        lookup = _lookup
    transfer = lookup(transfer_id) if (lookup and transfer_id) else None
    if transfer is None:
        return _refuse(404, UNKNOWN)
    peer = _peer_name(request)
    if peer is not None and peer != transfer.user:
        log.warning(f"direct download of transfer {transfer_id} refused: certificate {peer!r} is not {transfer.user!r}")
        return _refuse(403, f"this transfer belongs to {transfer.user}, not to the certificate's {peer or 'holder'}")

    response = web.StreamResponse(
        status=200, headers={"Content-Type": "application/octet-stream", "Content-Length": str(transfer.size)}
    )
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    offset = 0
    while offset < transfer.size:
        try:
            data = await loop.run_in_executor(None, transfer.read, offset, min(BLOCK, transfer.size - offset))
        except OSError as e:
            # The body is cut short; the admin resumes by ranges and gets the reason there.
            log.warning(f"direct download of transfer {transfer_id} stopped at {offset}: {e}")
            request.transport.close()
            return response
        if not data:
            log.warning(f"direct download of transfer {transfer_id} stopped at {offset}: the file got shorter")
            request.transport.close()
            return response
        try:
            await response.write(data)
        except ConnectionError as e:
            # The admin went away or its connection broke; it resumes by ranges if it can.
            log.warning(f"direct download of transfer {transfer_id} stopped at {offset}: {type(e).__name__}: {e}")
            return response
        offset += len(data)
        transfer.touch(len(data))
    await response.write_eof()
    return response
