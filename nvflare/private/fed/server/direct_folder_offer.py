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
"""Offer upstream's folder downloads (download_job, download_job_components) the direct route.

Upstream's BinaryTransfer.download_folder prepares the files and opens a DownloadService
transaction for them; the admin client then pulls each file in 5 MiB request/reply
chunks. Here (one call from download_folder) each file also gets a transfer on the range
server, offered in the reply meta, so an admin client of this fork fetches it as one
HTTPS response (direct_download_route) and an upstream admin client simply ignores it.

The DownloadService transaction stays the owner of the files and the fallback: a file
whose direct response fails is pulled from it as before. When every file went direct,
nobody pulls from DownloadService, so the offer deletes that transaction (which removes
the folder, as its own completion would). When some did not, the transaction completes
or expires as upstream's does. The transfers read from files opened now, so an expiring
DownloadService transaction cannot cut a long direct download short; they end when the
admin says so, when idle for the download timeout, or with the admin's session.
"""

import os
import threading

from nvflare.fuel.f3.drivers import direct_download_route
from nvflare.fuel.hci.component_range_defs import (
    DIRECT_FILES,
    DIRECT_ROUTE,
    MAX_LENGTH,
    MAX_RANGE_LENGTH,
    SOURCE_FQCN,
    TRANSFER_ID,
    TRANSFER_SIZE,
)
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.fuel.hci.server.download_settings import check_download_settings
from nvflare.fuel.utils.log_utils import get_module_logger
from nvflare.private.fed.server.component_range_server import ComponentRangeServer

logger = get_module_logger(__name__)


class _FolderOffer:
    """The direct transfers of one download_folder transaction."""

    def __init__(self, server: ComponentRangeServer, downloader, session_mgr, sess_id: str, count: int):
        self.server = server
        self.downloader = downloader
        self.session_mgr = session_mgr
        self.sess_id = sess_id
        self.binding = f"{downloader.tx_id}.direct"
        self.remaining = count
        self.all_ok = True
        self.transfer_ids = []
        self.lock = threading.Lock()

    def ended(self, status: str):
        with self.lock:
            self.remaining -= 1
            self.all_ok = self.all_ok and status == "ok"
            if self.remaining:
                return
        self.session_mgr.end_download(self.sess_id, self.binding)
        if self.all_ok:
            self.downloader.delete_transaction()  # nothing is left to pull from it

    def cancel(self):
        for transfer_id in list(self.transfer_ids):
            self.server.end(transfer_id, "cancelled")


def offer_direct_files(conn, downloader, tx_path: str, files: list) -> dict:
    """Meta entries for download_folder's reply: {DIRECT_FILES: {ref_id: transfer}}, or {}.

    ``files`` is download_folder's list of [path relative to tx_path, ref_id]. Any
    problem means no offer (the admin then pulls from DownloadService), never a failed
    command.
    """
    offer = None
    try:
        if not files or not direct_download_route.available():
            return {}
        engine = conn.get_prop(ConnProps.ENGINE)
        admin = conn.get_prop(ConnProps.ADMIN_SERVER)
        session = conn.get_prop(ConnProps.SESSION)
        session_mgr = admin.sess_mgr
        idle_timeout, _, direct = check_download_settings(
            max(admin.timeout, session_mgr.idle_timeout + session_mgr.monitor_interval)
        )
        if not direct:
            return {}
        server = ComponentRangeServer.for_cell(engine.get_cell())
        offer = _FolderOffer(server, downloader, session_mgr, session.sess_id, len(files))
        transfers = {}
        for rel_path, ref_id in files:
            transfer_id, size = server.open(
                os.path.join(tx_path, rel_path),
                requester=session.origin_fqcn,
                user=session.user_name,
                idle_timeout=idle_timeout,
                on_activity=lambda: session_mgr.mark_download_active(session.sess_id, downloader.tx_id),
                on_end=offer.ended,
                follow_path=False,
            )
            offer.transfer_ids.append(transfer_id)
            transfers[ref_id] = {
                TRANSFER_ID: transfer_id,
                SOURCE_FQCN: server.fqcn,
                TRANSFER_SIZE: size,
                MAX_LENGTH: MAX_RANGE_LENGTH,
                DIRECT_ROUTE: direct_download_route.ROUTE,
            }
        if not session_mgr.bind_download(session.sess_id, offer.binding, offer.cancel):
            offer.cancel()
            return {}
        return {DIRECT_FILES: transfers}
    except Exception as e:
        logger.error(f"no direct download offered for transaction {downloader.tx_id}: {type(e).__name__}: {e}")
        if offer:
            offer.all_ok = False  # DownloadService keeps serving
            offer.cancel()
        return {}
