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
"""Admin-client side of the direct route: the component as one HTTPS response.

The admin already holds what the response needs: the address, scheme and certificates its
own cell connected with (the server's aiohttp listener), and the transfer id the command
returned. So no setting is needed, and when the admin connects with another scheme (grpc,
tcp) the route is simply not tried.

One thread reads the response into a few reused buffers (the TLS read releases the GIL)
while the caller's sink writes the previous buffer and hands it to a hashing thread
(``sink_releases``: the sink gives each buffer back once it is written and hashed), so
decrypting, writing and hashing overlap on two cores and memory stays at
``buffers x block``. The body is read
with the TLS socket's own ``recv_into`` once http.client's header buffer is drained:
``HTTPResponse.readinto`` adds three Python layers per TLS record (at most 16 KiB), which
cost about a fifth of the reader's CPU on a 2-core host (bench/download_bench.py's
verified TLS ceiling reads the same way). Whatever stops the
response early - a refusal, a proxy that passes only websockets, a cut connection - is a
DirectUnavailable; the caller then continues by ranges from the bytes already delivered,
so nothing is fetched twice and the ranges report the real cause if there is one.
A download that resumes asks for the bytes from ``start`` on (``OFFSET_HEADER``); a server
that does not know the header answers with the whole file, which the Content-Length check
turns into DirectUnavailable, and the ranges go on from ``start``.
"""

import http.client
import queue
import socket
import threading
from typing import Callable, Optional

from nvflare.apis.signal import Signal
from nvflare.fuel.f3.drivers import net_utils
from nvflare.fuel.f3.drivers.direct_download_route import OFFSET_HEADER, TRANSFER_HEADER
from nvflare.fuel.f3.drivers.driver_params import DriverParams

BLOCK = 1024 * 1024
BUFFERS = 6  # one being read, one written, one hashed, the rest queued between them
_POLL = 0.2  # seconds between abort checks while waiting for data


class DirectUnavailable(Exception):
    """The response could not deliver (all of) the file; the ranges can take over."""


class DirectAborted(Exception):
    """The session's abort signal fired."""


def direct_endpoint(cell) -> Optional[tuple]:
    """(host, port, ssl context or None) of the listener this admin's cell is connected to."""
    connector = getattr(getattr(cell, "core_cell", None), "bb_ext_connector", None)
    params = dict(getattr(connector, "params", None) or {})
    if params.get(DriverParams.SCHEME.value) not in ("http", "https"):
        return None
    try:
        port = int(params.get(DriverParams.PORT.value))
    except (TypeError, ValueError):
        return None
    host = params.get(DriverParams.HOST.value) or "localhost"
    return host, port, net_utils.get_ssl_context(params, False)


def _fill(readinto, view: memoryview) -> int:
    got = 0
    while got < len(view):
        n = readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _body_readinto(response, sock) -> Callable[[memoryview], int]:
    """``readinto`` for the body: http.client's buffered bytes first, then the socket itself.

    Only for a plain Content-Length body (checked by the caller); a chunked one keeps
    http.client's reader.
    """
    if response.chunked or sock is None:
        return response.readinto
    fp = response.fp
    pending = [None]  # bytes http.client read ahead with the headers, not yet delivered

    def readinto(view: memoryview) -> int:
        if pending[0] is None:
            # peek() returns what the buffer holds (one raw read if it is empty); read()
            # of exactly that much takes it from the buffer without touching the socket.
            ahead = fp.peek()
            pending[0] = memoryview(fp.read(len(ahead)) if ahead else b"")
        if len(pending[0]):
            n = min(len(view), len(pending[0]))
            view[:n] = pending[0][:n]
            pending[0] = pending[0][n:]
            return n
        return sock.recv_into(view)

    return readinto


def read_direct(
    endpoint: tuple,
    route: str,
    transfer_id: str,
    size: int,
    sink: Callable[[memoryview], None],
    timeout: float,
    abort_signal: Optional[Signal] = None,
    block: int = BLOCK,
    buffers: int = BUFFERS,
    start: int = 0,
    sink_releases: bool = False,
) -> None:
    """Deliver bytes start..size of the transfer to ``sink`` in order, or raise.

    DirectUnavailable: the response was refused or ended early (``sink`` has received
    everything that arrived intact). DirectAborted: the abort signal fired. Whatever
    ``sink`` raises is raised as is. ``timeout`` bounds each wait for data, not the whole
    download, like every other admin download timeout. ``sink_releases``: ``sink`` is
    called as ``sink(view, release)`` and calls ``release()`` once it no longer needs the
    buffer (which is reused after that); otherwise the buffer is reused when ``sink`` returns.
    """
    host, port, ssl_context = endpoint
    if ssl_context is None:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl_context)
    threads = []
    sock = None
    try:
        try:
            headers = {TRANSFER_HEADER: transfer_id, **({OFFSET_HEADER: str(start)} if start else {})}
            conn.request("GET", route, headers=headers)
            sock = conn.sock  # getresponse() drops it from conn when the server closes after the body
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            raise DirectUnavailable(f"could not reach {host}:{port}{route} ({type(e).__name__}: {e})") from None
        if response.status != 200:
            reason = response.read(1000).decode("utf-8", "replace").strip() or response.reason
            raise DirectUnavailable(f"the server refused it (HTTP {response.status}: {reason})")
        length = response.getheader("Content-Length")
        if length != str(size - start):
            raise DirectUnavailable(f"the server offers {length} bytes, expected {size - start}")
        _pump(_body_readinto(response, sock), size - start, sink, abort_signal, block, buffers, threads, sink_releases)
    finally:
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a reader still blocked in recv
        except OSError:
            pass
        conn.close()
        for reader in threads:
            reader.join(timeout=5.0)


def _pump(readinto, size, sink, abort_signal, block, buffers, threads: list, sink_releases: bool = False):
    free = queue.Queue()
    full = queue.Queue()
    for _ in range(buffers):
        free.put(memoryview(bytearray(block)))
    done = object()

    def read_all():
        offset = 0
        try:
            while offset < size:
                buf = free.get()
                if buf is None:
                    return  # the consumer stopped
                want = min(block, size - offset)
                n = _fill(readinto, buf[:want])
                if n:
                    full.put((buf, n))
                    offset += n
                if n < want:
                    raise DirectUnavailable(f"the response ended after {offset} of {size} bytes")
            full.put(done)
        except (OSError, http.client.HTTPException) as e:
            full.put(DirectUnavailable(f"the response broke off ({type(e).__name__}: {e})"))
        except BaseException as e:
            full.put(e)

    reader = threading.Thread(target=read_all, name="component_direct_reader", daemon=True)
    threads.append(reader)
    reader.start()
    try:
        while True:
            try:
                item = full.get(timeout=_POLL)
            except queue.Empty:
                if abort_signal and abort_signal.triggered:
                    raise DirectAborted("aborted") from None
                continue
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            buf, n = item
            if sink_releases:
                sink(buf[:n], lambda b=buf: free.put(b))
            else:
                sink(buf[:n])
                free.put(buf)
            if abort_signal and abort_signal.triggered:
                raise DirectAborted("aborted")
    finally:
        free.put(None)  # a reader waiting for a buffer stops; one blocked in recv stops at close
