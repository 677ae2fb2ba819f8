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
"""Serves one prepared component file to the admin that asked for it: by byte ranges over cell
messages, and to the direct download route (one HTTPS response) from the same transfer.

Why not DownloadService: its replies travel on a streaming channel, so every reply is a
byte stream of its own (1 MiB frames, acks, reassembly), and the receiving admin keeps
each finished stream and a timer thread for 65 s. Measured on a 2-core host (see
docs/performance.md) that path stays near 100-200 MB/s however many requests are in
flight, and the admin process grows by 50-120 MiB on a 500 MB file, more for bigger files.

Here a request names a range by offset and the reply is one plain cell message on the
server main channel, which does not stream. Several requests can be in flight, asking
for a range twice returns the same bytes (so a receiver may retry any request), and
nothing outlives a reply. The file is read with pread from the job manager's download
preparation (a symlink into the store for FilesystemStorage): nothing is staged.

A transfer belongs to the admin cell whose command opened it (and, on the direct route,
to the certificate its session logged in with); it ends when that admin says so, when it
is idle longer than the download timeout, when its session ends (the session manager's
download binding), when it is older than admin_download_max_lifetime, or when it received
less than admin_download_min_rate over the last admin_download_progress_window (so a
reader taking a byte now and then cannot hold its slot for ever). It holds no file
descriptor while nobody reads (see _Transfer), and how many an admin may open is bounded
before the command runs (download_admission). The same transfer can also be read in one
HTTP response on the server's listener (direct_download_route), which is several times
faster; the ranges are the fallback and the way to resume after an interrupted response.

Nothing of a range waits in the thread it arrived on: range requests are cell request
callbacks in the connection manager's frame pool, which carries every frame the server
parent receives (heartbeats, tasks, admin commands). The callback only checks the request
and admits it, in memory: at most admin_download_ranges_per_transfer in flight per
transfer and admin_download_ranges_per_user per account, the excess refused at once. An
admitted range goes to the pace (download_pacing, fair between accounts), then to the
download threads (download_threads), which read it and send the reply with the cell's
deferred reply (CoreCell.send_reply for the request's id: the callback returned None, so
the cell sent nothing). The admin's request/reply protocol is unchanged on the wire.
"""

import os
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from typing import Callable, Optional

from nvflare.fuel.f3.cellnet.cell import Cell
from nvflare.fuel.f3.cellnet.defs import MessageHeaderKey, ReturnCode
from nvflare.fuel.f3.cellnet.utils import make_reply
from nvflare.fuel.f3.drivers import direct_download_route
from nvflare.fuel.f3.message import Message
from nvflare.fuel.hci.job_component_defs import (
    DIRECT_ROUTE,
    END,
    LENGTH,
    MAX_LENGTH,
    MAX_RANGE_LENGTH,
    OFFSET,
    RANGE_BUSY_CODE,
    RANGE_CHANNEL,
    RANGE_TOPIC,
    SOURCE_FQCN,
    TRANSFER_ID,
    TRANSFER_SIZE,
)
from nvflare.fuel.hci.server import download_admission, download_pacing, download_threads
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.fuel.hci.server.download_settings import (
    ADMIN_DOWNLOAD_MAX_LIFETIME,
    ADMIN_DOWNLOAD_MIN_RATE,
    ADMIN_DOWNLOAD_PROGRESS_WINDOW,
    ADMIN_DOWNLOAD_RANGES_PER_TRANSFER,
    ADMIN_DOWNLOAD_RANGES_PER_USER,
    ADMIN_DOWNLOAD_SERVER_LIMIT,
    ADMIN_DOWNLOAD_SESSION_LIMIT,
    TransferBounds,
    admin_download_rate_limit,
    check_download_settings,
    download_limits,
    transfer_bounds,
    upstream_download_timeout,
)
from nvflare.fuel.hci.server.session_certs import session_fingerprint
from nvflare.fuel.utils.log_utils import get_obj_logger

# How often idle, overdue and slow transfers are looked for; the bounds themselves are per transfer.
SWEEP_INTERVAL = 1.0
# Transfers ended by a bound whose reason a late range request is told (the newest ones).
ENDED_REASONS_KEPT = 1024

UNKNOWN_TRANSFER = "no such transfer: it ended, expired, or belongs to another admin"
LIFETIME = "lifetime"
TOO_SLOW = "too slow"


def transfer_busy_message(limit: int) -> str:
    return (
        f"range refused: this download already has {limit} range requests in flight "
        f"({ADMIN_DOWNLOAD_RANGES_PER_TRANSFER} = {limit}); ask for the next range when one is answered"
    )


def user_busy_message(user: str, limit: int) -> str:
    return (
        f"range refused: the account {user} already has {limit} range requests in flight across its downloads "
        f"({ADMIN_DOWNLOAD_RANGES_PER_USER} = {limit}); ask for the next range when one is answered"
    )


def lifetime_message(lifetime: float) -> str:
    return (
        f"the server ended the download: it was open for {lifetime:g} s, the longest a download may stay open "
        f"({ADMIN_DOWNLOAD_MAX_LIFETIME}); run the command again to download the file anew"
    )


def too_slow_message(received: int, window: float, min_rate: float) -> str:
    return (
        f"the server ended the download: it received {received} bytes in the last {window:g} s, less than the "
        f"{min_rate / 1e6:g} MB/s a download must keep ({ADMIN_DOWNLOAD_MIN_RATE} over "
        f"{ADMIN_DOWNLOAD_PROGRESS_WINDOW}); run the command again when the link is faster"
    )


class _Response:
    """The one direct response a transfer may have: its descriptor and how to cut it."""

    def __init__(self, fd: int, abort: Callable[[], None]):
        self.fd = fd
        self.abort = abort


class _Transfer(direct_download_route.DirectSource):
    """One file offered to one admin session.

    No descriptor is held while nobody reads: a range opens the file, checks it is still
    the file offered (device and inode), reads and closes; a direct response holds one
    descriptor from its first byte to its end. So offers cost memory only, and the
    descriptors in use are bounded by the reads in flight plus the active responses
    (at most one per transfer, and per session and server by the download limits).
    """

    def __init__(self, path, requester, user, session_id, fingerprint, idle_timeout, on_activity, on_end, follow_path):
        self.path = path
        self.released_with_path = False  # see ComponentTransferServer.open
        self.may_respond: Callable[["_Transfer"], Optional[str]] = lambda t: None
        self.follow_path = follow_path
        st = os.stat(path)
        self.size = st.st_size
        self.identity = (st.st_dev, st.st_ino)
        self.requester = requester
        self.user = user
        self.session_id = session_id
        self.fingerprint = fingerprint
        self.idle_timeout = idle_timeout
        self.on_activity = on_activity
        self.on_end = on_end
        self.opened = self.last_active = time.time()
        self.bounds: TransferBounds = transfer_bounds()
        self.group = ""  # transfers of one download (a folder offer) share lifetime and progress
        self.in_flight = 0  # range requests admitted and not yet answered
        self.served = 0
        self.served_direct = 0
        # reads, the response's descriptor and close never overlap, so a closed fd number
        # reused elsewhere is never read.
        self.fd_lock = threading.Lock()
        self.closed = False
        self.response: Optional[_Response] = None

    def _open(self) -> int:
        # The offered path may be a symlink into the store: a deleted job's file is gone,
        # a replaced one is another inode; neither is served as this transfer.
        if self.follow_path and not os.path.exists(self.path):
            raise OSError("it is no longer in the job store")
        fd = os.open(self.path, os.O_RDONLY)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != self.identity:
            os.close(fd)
            raise OSError("the file was replaced after the download started")
        return fd

    def read(self, offset: int, length: int) -> bytes:
        """One range: open, read, close (in a download thread)."""
        with self.fd_lock:
            if self.closed:
                raise OSError("the transfer has ended")
            fd = self._open()
            try:
                data = os.pread(fd, length, offset)
            finally:
                os.close(fd)
        self.served += len(data)
        return data

    def begin_response(self, abort: Callable[[], None]) -> None:
        with self.fd_lock:
            if self.closed:
                raise LookupError("ended")
            if self.response is not None:
                raise direct_download_route.ResponseBusy(direct_download_route.BUSY)
            refusal = self.may_respond(self)
            if refusal:
                raise direct_download_route.ResponseBusy(refusal)
            self.response = _Response(self._open(), abort)

    def read_response(self, offset: int, length: int) -> bytes:
        with self.fd_lock:
            if self.closed or self.response is None:
                raise OSError("the transfer has ended")
            if self.follow_path and not os.path.exists(self.path):
                raise OSError("it is no longer in the job store")
            data = os.pread(self.response.fd, length, offset)
        self.served += len(data)
        return data

    def end_response(self) -> None:
        with self.fd_lock:
            response, self.response = self.response, None
            if response is not None:
                os.close(response.fd)

    def has_response(self) -> bool:
        return self.response is not None

    def touch(self, served: int):
        self.last_active = time.time()
        self.served_direct += served
        if self.on_activity:
            self.on_activity()

    def close(self):
        with self.fd_lock:
            self.closed = True
            response, self.response = self.response, None
            if response is not None:
                os.close(response.fd)
        if response is not None:
            response.abort()  # the transfer ended: so does its response, at once


class ComponentTransferServer:
    """One per server cell; ``for_cell`` registers it on first use."""

    _lock = threading.Lock()
    _servers = weakref.WeakKeyDictionary()

    @classmethod
    def for_cell(cls, cell: Cell) -> "ComponentTransferServer":
        with cls._lock:
            server = cls._servers.get(cell)
            if server is None:
                server = cls._servers[cell] = cls(cell)
            return server

    def __init__(self, cell: Cell):
        self.logger = get_obj_logger(self)
        self.cell = cell
        self.fqcn = cell.get_fqcn()
        self.transfers = {}
        self.ranges_by_user = {}  # account -> range requests in flight over all its transfers
        self.ended = OrderedDict()  # transfer id -> (requester, why), for transfers a bound ended
        self.progress = {}  # group -> (time, bytes served by then): the start of its progress window
        self.session_mgrs = weakref.WeakSet()  # whose download bindings have a lifetime too
        self.lock = threading.Lock()
        cell.register_request_cb(channel=RANGE_CHANNEL, topic=RANGE_TOPIC, cb=self._handle)
        direct_download_route.set_transfer_lookup(self.lookup)
        threading.Thread(target=self._sweep, name="component_range_sweeper", daemon=True).start()

    def open(
        self,
        path: str,
        requester: str,
        user: str,
        idle_timeout: float,
        on_activity: Optional[Callable[[], None]] = None,
        on_end: Optional[Callable[[str], None]] = None,
        follow_path: bool = True,
        session_id: str = "",
        fingerprint: Optional[str] = None,
        released_with_path: bool = False,
        group: str = "",
    ) -> tuple:
        """Start serving ``path`` to the cell ``requester`` of admin ``user``; return (transfer id, size).

        ``on_end(status)`` runs once when the transfer ends, with "ok", the receiver's
        reason, "expired", "cancelled", "lifetime" or "too slow". ``follow_path``: the
        transfer fails once ``path`` is gone (a deleted job); False keeps serving the file
        opened now (another owner may remove its folder while it is read). ``fingerprint``:
        sha256 of the certificate the admin's session logged in with; the direct route
        serves only that certificate. ``released_with_path``: end the transfer once ``path``
        is gone and no response is reading it (a folder offer whose DownloadService
        transaction completed or expired: an upstream admin client never ends the offer
        itself). ``group``: transfers of one download (the files of a folder offer) share
        its lifetime and its progress; by default a transfer is its own download.
        """
        transfer = _Transfer(
            path, requester, user, session_id, fingerprint, idle_timeout, on_activity, on_end, follow_path
        )
        transfer.released_with_path = released_with_path
        transfer.may_respond = self._may_respond
        transfer_id = secrets.token_hex(16)
        transfer.group = group or transfer_id
        with self.lock:
            self.transfers[transfer_id] = transfer
        return transfer_id, transfer.size

    def _may_respond(self, transfer: _Transfer) -> Optional[str]:
        """None if one more direct response fits the download limits, else why not."""
        limits = download_limits()
        with self.lock:
            active = [t for t in self.transfers.values() if t.has_response()]
        if sum(t.session_id == transfer.session_id for t in active) >= limits.per_session:
            return (
                f"this admin session already has {limits.per_session} direct responses in progress "
                f"({ADMIN_DOWNLOAD_SESSION_LIMIT}); the download continues by ranges"
            )
        if len(active) >= limits.per_server:
            return (
                f"the server already sends {limits.per_server} direct responses "
                f"({ADMIN_DOWNLOAD_SERVER_LIMIT}); the download continues by ranges"
            )
        return None

    def lookup(self, transfer_id: str) -> Optional[_Transfer]:
        with self.lock:
            return self.transfers.get(transfer_id)

    def end(self, transfer_id: str, status: str, why: str = "") -> bool:
        """End the transfer now; ``why``: what a later range request of its admin is told."""
        transfer = self._forget(transfer_id, why)
        if transfer is None:
            return False
        self._finish(transfer_id, transfer, status, why)
        return True

    def _forget(self, transfer_id: str, why: str = "") -> Optional[_Transfer]:
        """Take the transfer out of service (in memory only: a frame thread may call it)."""
        with self.lock:
            transfer = self.transfers.pop(transfer_id, None)
            if transfer is not None and why:
                self.ended[transfer_id] = (transfer.requester, why)
                while len(self.ended) > ENDED_REASONS_KEPT:
                    self.ended.popitem(last=False)
        return transfer

    def _finish(self, transfer_id: str, transfer: _Transfer, status: str, why: str = ""):
        """Close a forgotten transfer and clean up after it (its folder, its binding)."""
        transfer.close()
        self.logger.info(
            f"range transfer {transfer_id} ended ({status}) after {transfer.served} bytes served "
            f"({transfer.served_direct} direct)" + (f": {why}" if why else "")
        )
        if transfer.on_end:
            try:
                transfer.on_end(status)
            except Exception as e:
                self.logger.error(f"clean-up of range transfer {transfer_id} failed: {type(e).__name__}: {e}")

    # -- range requests: checked and admitted in the frame thread, served in download threads --
    def _handle(self, request: Message) -> Optional[Message]:
        payload = request.payload if isinstance(request.payload, dict) else {}
        transfer_id = payload.get(TRANSFER_ID)
        origin = request.get_header(MessageHeaderKey.ORIGIN)
        with self.lock:
            transfer = self.transfers.get(transfer_id) if isinstance(transfer_id, str) else None
            ended = self.ended.get(transfer_id) if transfer is None and isinstance(transfer_id, str) else None
        if transfer is None or transfer.requester != origin:
            why = ended[1] if ended and ended[0] == origin else UNKNOWN_TRANSFER
            return make_reply(ReturnCode.INVALID_REQUEST, error=why)
        transfer.last_active = time.time()
        if transfer.on_activity:
            transfer.on_activity()
        expects_reply = bool(request.get_header(MessageHeaderKey.REPLY_EXPECTED, False))
        if END in payload:
            # out of service at once (a second END finds nothing); the clean-up (folders,
            # bindings) touches the disk: a download thread does it, then answers
            if self._forget(transfer_id) is not transfer:
                return make_reply(ReturnCode.OK)  # another END came first
            download_threads.submit(self._end_and_reply, transfer_id, transfer, str(payload[END]), request)
            return None

        offset, length = payload.get(OFFSET), payload.get(LENGTH)
        if not (isinstance(offset, int) and isinstance(length, int)):
            return make_reply(ReturnCode.INVALID_REQUEST, error="offset and length must be integers")
        if not (0 <= offset < transfer.size and 0 < length <= MAX_RANGE_LENGTH):
            return make_reply(
                ReturnCode.INVALID_REQUEST,
                error=f"range {offset}+{length} is outside 0..{transfer.size} or longer than {MAX_RANGE_LENGTH}",
            )
        if not expects_reply:
            return None  # nobody waits for these bytes: nothing to read
        refusal = self._admit(transfer)
        if refusal:
            return make_reply(RANGE_BUSY_CODE, error=refusal)
        length = min(length, transfer.size - offset)
        reply_to = (origin, request.get_header(MessageHeaderKey.REQ_ID), request.get_header(MessageHeaderKey.SECURE))
        # admin_download_rate_limit, shared fairly with the other accounts and the direct responses
        download_pacing.submit(
            transfer.user,
            transfer_id,
            length,
            lambda: download_threads.submit(self._serve, transfer_id, transfer, offset, length, reply_to),
        )
        return None  # answered by _serve

    def _admit(self, transfer: _Transfer) -> Optional[str]:
        bounds = transfer.bounds
        with self.lock:
            if transfer.in_flight >= bounds.ranges_per_transfer:
                return transfer_busy_message(bounds.ranges_per_transfer)
            if self.ranges_by_user.get(transfer.user, 0) >= bounds.ranges_per_user:
                return user_busy_message(transfer.user, bounds.ranges_per_user)
            transfer.in_flight += 1
            self.ranges_by_user[transfer.user] = self.ranges_by_user.get(transfer.user, 0) + 1
        return None

    def _release(self, transfer: _Transfer):
        with self.lock:
            transfer.in_flight -= 1
            left = self.ranges_by_user.get(transfer.user, 1) - 1
            if left > 0:
                self.ranges_by_user[transfer.user] = left
            else:
                self.ranges_by_user.pop(transfer.user, None)

    def _serve(self, transfer_id: str, transfer: _Transfer, offset: int, length: int, reply_to: tuple):
        try:
            if transfer.closed:
                with self.lock:
                    ended = self.ended.get(transfer_id)
                reply = make_reply(ReturnCode.INVALID_REQUEST, error=ended[1] if ended else UNKNOWN_TRANSFER)
            else:
                reply = make_reply(ReturnCode.OK, body=transfer.read(offset, length))
        except OSError as e:
            reply = make_reply(ReturnCode.PROCESS_EXCEPTION, error=f"cannot read the component: {e}")
        finally:
            # before the reply leaves: its admin may ask for the next range as soon as it has it
            self._release(transfer)
        self._reply(reply, reply_to)

    def _reply(self, reply: Message, reply_to: tuple):
        origin, req_id, secure = reply_to
        err = self.cell.send_reply(reply, to_cell=origin, for_req_ids=[req_id], secure=bool(secure))
        if err:
            self.logger.warning(f"range reply to {origin} not sent: {err}")

    def _end_and_reply(self, transfer_id: str, transfer: _Transfer, status: str, request: Message):
        self._finish(transfer_id, transfer, status)
        if request.get_header(MessageHeaderKey.REPLY_EXPECTED, False):
            origin = request.get_header(MessageHeaderKey.ORIGIN)
            reply_to = (
                origin,
                request.get_header(MessageHeaderKey.REQ_ID),
                request.get_header(MessageHeaderKey.SECURE),
            )
            self._reply(make_reply(ReturnCode.OK), reply_to)

    # -- the sweeper: idle, overdue and slow transfers ---------------------------------------
    def _sweep(self):
        while True:
            time.sleep(SWEEP_INTERVAL)
            try:
                self._sweep_once(time.time())
            except Exception as e:
                self.logger.error(f"range transfer sweep failed: {type(e).__name__}: {e}")

    def _sweep_once(self, now: float):
        ending = {}  # transfer id -> (status, why)
        released = []  # (transfer id, path) of folder offers whose files may be gone
        with self.lock:
            groups = {}
            for tid, t in self.transfers.items():
                groups.setdefault(t.group, []).append((tid, t))
                if now - t.last_active > t.idle_timeout:
                    ending[tid] = ("expired", "")
                elif t.released_with_path and not t.has_response():
                    released.append((tid, t.path))
            for group, members in groups.items():
                bounds = members[0][1].bounds
                opened = min(t.opened for _, t in members)
                served = sum(t.served for _, t in members)
                if now - opened > bounds.max_lifetime:
                    why = (LIFETIME, lifetime_message(bounds.max_lifetime))
                elif bounds.min_rate > 0:
                    since, served_then = self.progress.setdefault(group, (opened, 0))
                    if now - since < bounds.progress_window:
                        continue
                    received = served - served_then
                    if received >= bounds.min_rate * (now - since):
                        self.progress[group] = (now, served)
                        continue
                    why = (TOO_SLOW, too_slow_message(received, bounds.progress_window, bounds.min_rate))
                else:
                    continue
                for tid, _ in members:
                    ending.setdefault(tid, why)
            for group in [g for g in self.progress if g not in groups]:
                del self.progress[group]
            session_mgrs = list(self.session_mgrs)
        for tid, path in released:  # the disk is looked at outside the lock the frame threads take
            if not os.path.lexists(path):
                ending.setdefault(tid, ("released: its download's files are gone", ""))
        for tid, (status, why) in ending.items():
            self.end(tid, status, why)
        for session_mgr in session_mgrs:
            download_admission.end_overdue(session_mgr, now)


def _jobs_running(engine) -> bool:
    """Whether the server runs a job now; unknown (another engine) counts as yes: paced."""
    processes = getattr(engine, "run_processes", None)
    return True if processes is None else bool(processes)


class AdminDownload:
    """What opening transfers for one admin command needs: whose, for how long, which way."""

    def __init__(self, conn):
        engine = conn.get_prop(ConnProps.ENGINE)
        admin = conn.get_prop(ConnProps.ADMIN_SERVER)
        self.session = conn.get_prop(ConnProps.SESSION)
        self.session_mgr = admin.sess_mgr
        # Upstream's inactivity timeout for admin downloads, or admin_download_timeout.
        self.idle_timeout, _, direct = check_download_settings(upstream_download_timeout(admin))
        direct_download_route.set_response_timeout(download_limits().response_timeout)
        download_pacing.set_rate_limit(admin_download_rate_limit())
        download_pacing.set_jobs_running_check(lambda: _jobs_running(engine))
        # Direct responses go only to the certificate this session logged in with; a session
        # recreated from a token (server restart) has none on record and uses the ranges.
        self.fingerprint = session_fingerprint(self.session.sess_id)
        self.direct = direct and direct_download_route.available() and self.fingerprint is not None
        self.server = ComponentTransferServer.for_cell(engine.get_cell())
        self.server.session_mgrs.add(self.session_mgr)  # its bindings get admin_download_max_lifetime too

    def open(
        self,
        path: str,
        activity_tx_id: str,
        on_end,
        follow_path: bool = True,
        released_with_path=False,
        group: str = "",
    ) -> dict:
        """Open a transfer of ``path`` for this admin; the reply meta that describes it."""
        transfer_id, size = self.server.open(
            path,
            requester=self.session.origin_fqcn,
            user=self.session.user_name,
            idle_timeout=self.idle_timeout,
            on_activity=lambda: self.session_mgr.mark_download_active(self.session.sess_id, activity_tx_id),
            on_end=on_end,
            follow_path=follow_path,
            session_id=self.session.sess_id,
            fingerprint=self.fingerprint,
            released_with_path=released_with_path,
            group=group,
        )
        transfer = {
            TRANSFER_ID: transfer_id,
            SOURCE_FQCN: self.server.fqcn,
            TRANSFER_SIZE: size,
            MAX_LENGTH: MAX_RANGE_LENGTH,
        }
        if self.direct:
            transfer[DIRECT_ROUTE] = direct_download_route.ROUTE
        return transfer
