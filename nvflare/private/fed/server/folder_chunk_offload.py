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
"""Upstream's DownloadService chunks of admin folder downloads, served off the shared stream threads.

download_job and download_job_components (upstream's BinaryTransfer.download_folder) serve
their files through DownloadService: an upstream admin client, or a fork client whose
direct response failed, asks for one chunk (admin_download_chunk_size, 5 MiB) at a time,
and DownloadService's request callback reads it from disk in the stream callback pool of
the server parent, the pool that also runs every admin command. Unpaced, and unbounded: an
account could keep that pool reading for it (issue 21).

Here DownloadService's callback on the server parent's cell is wrapped, once per cell: a
cell keeps one callback per channel and topic, and direct_folder_offer installs the
wrapper right after download_folder opened its DownloadService transaction (so
DownloadService has registered its own). A chunk request of an admin download transaction
is then checked and admitted in the stream thread, in memory (at most
admin_download_ranges_per_user in flight per account, the excess refused at once), waits
for its turn on the pace (download_pacing, fairly with the ranges and direct responses),
and is produced by the original callback in the download threads (download_threads); the
stream cell sends the reply when the returned future completes (its asynchronous response,
upstream's Adapter). Every other request (other transactions, confirmations, cancels, a
request that did not come by a stream) goes to DownloadService's callback unchanged.
"""

import threading
import weakref
from concurrent.futures import Future
from typing import Optional

from nvflare.fuel.f3.cellnet.defs import ReturnCode
from nvflare.fuel.f3.cellnet.utils import make_reply
from nvflare.fuel.f3.message import Message
from nvflare.fuel.f3.streaming.download_service import OBJ_DOWNLOADER_CHANNEL, OBJ_DOWNLOADER_TOPIC, DownloadService
from nvflare.fuel.f3.streaming.stream_const import StreamHeaderKey
from nvflare.fuel.hci.server import download_pacing, download_threads
from nvflare.fuel.hci.server.download_settings import (
    ADMIN_DOWNLOAD_RANGES_PER_USER,
    admin_download_chunk_size,
    transfer_bounds,
)
from nvflare.fuel.utils.log_utils import get_module_logger

log = get_module_logger(__name__)

# DownloadService's request payload keys (download_service._PropKey, pinned by tests/upstream/test_upstream_shapes.py).
REF_ID = "ref_id"
CONTROL_KEYS = ("confirm", "cancel")

_lock = threading.Lock()
_admin_transactions = {}  # DownloadService transaction id -> the admin account it serves
_in_flight = {}  # account -> chunk requests admitted and not yet answered
_installed = weakref.WeakKeyDictionary()  # cell -> our handler on it


def busy_message(user: str, limit: int) -> str:
    return (
        f"chunk refused: the account {user} already has {limit} download chunk requests in flight "
        f"({ADMIN_DOWNLOAD_RANGES_PER_USER} = {limit}); ask for the next chunk when one is answered"
    )


def serve_admin_transaction(cell, tx_id: str, user: str) -> None:
    """Serve the chunks of DownloadService transaction ``tx_id`` (of admin ``user``) from the download threads."""
    with _lock:
        for tid in [t for t in _admin_transactions if DownloadService.get_transaction_info(t) is None]:
            del _admin_transactions[tid]  # completed or expired since
        _admin_transactions[tx_id] = user
        current = cell.core_cell.req_reg.find(OBJ_DOWNLOADER_CHANNEL, OBJ_DOWNLOADER_TOPIC)
        if current is None:
            raise RuntimeError("DownloadService has no request callback on this cell")
        handler = _installed.get(cell)
        if handler is not None and current.cb == handler.handle:
            return
        # first use, or DownloadService registered itself again (after its shutdown): wrap what is there
        handler = _installed[cell] = _Handler(current)
        cell.register_request_cb(channel=OBJ_DOWNLOADER_CHANNEL, topic=OBJ_DOWNLOADER_TOPIC, cb=handler.handle)


class _Handler:
    def __init__(self, original):
        self.original = original  # the Callback DownloadService registered

    def _upstream(self, request: Message) -> Message:
        return self.original.cb(request, *self.original.args, **self.original.kwargs)

    def _account(self, request: Message) -> Optional[str]:
        payload = request.payload
        if not isinstance(payload, dict) or any(k in payload for k in CONTROL_KEYS):
            return None
        if not request.get_header(StreamHeaderKey.STREAM_REQ_ID):
            return None  # not by a stream: the caller waits for a Message
        tx_id = DownloadService.get_transaction_id(payload.get(REF_ID))
        with _lock:
            return _admin_transactions.get(tx_id)

    def handle(self, request: Message):
        user = self._account(request)
        if user is None:
            return self._upstream(request)
        limit = transfer_bounds().ranges_per_user
        with _lock:
            if _in_flight.get(user, 0) >= limit:
                return make_reply(ReturnCode.SERVICE_UNAVAILABLE, error=busy_message(user, limit))
            _in_flight[user] = _in_flight.get(user, 0) + 1
        reply = Future()

        def produce():
            try:
                result = self._upstream(request)
            except Exception as e:
                log.error(f"download chunk for {user} failed: {type(e).__name__}: {e}")
                result = make_reply(ReturnCode.PROCESS_EXCEPTION)
            _release(user)  # before the reply leaves: the admin may ask for the next chunk at once
            reply.set_result(result)  # the stream cell sends it (from this thread)

        tx_id = DownloadService.get_transaction_id(request.payload.get(REF_ID)) or ""
        download_pacing.submit(user, tx_id, admin_download_chunk_size(), lambda: download_threads.submit(produce))
        return reply


def _release(user: str):
    with _lock:
        left = _in_flight.get(user, 1) - 1
        if left > 0:
            _in_flight[user] = left
        else:
            _in_flight.pop(user, None)
