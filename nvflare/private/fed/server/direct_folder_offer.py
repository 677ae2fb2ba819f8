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
or expires as upstream's does.

The offer costs no file descriptor: a transfer opens its file only when bytes are read,
and a direct response keeps it open until it ends, so an expiring DownloadService
transaction cannot cut a running response short. The transfers end when the admin says
so, when idle for the download timeout, with the admin's session, or - for an upstream
admin client that never takes the offer - as soon as DownloadService's transaction
removed the files (the range server's sweep, within a second). The download as a whole
counts once against the download limits (download_admission), and its files share one
lifetime and one progress window (admin_download_max_lifetime, admin_download_min_rate):
a file waiting for its turn is not a slow reader. The DownloadService chunks of the same
download are read in the fork's download threads and paced too (folder_chunk_offload).
"""

import os
import threading

from nvflare.fuel.hci.job_component_defs import DIRECT_FILES, TRANSFER_ID
from nvflare.fuel.utils.log_utils import get_module_logger
from nvflare.private.fed.server import folder_chunk_offload
from nvflare.private.fed.server.component_transfer_server import AdminDownload, ComponentTransferServer

logger = get_module_logger(__name__)


class _FolderOffer:
    """The direct transfers of one download_folder transaction."""

    def __init__(self, server: ComponentTransferServer, downloader, session_mgr, sess_id: str, count: int):
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
        if not files:
            return {}
        download = AdminDownload(conn)
        try:  # DownloadService's own chunks of this download: off the shared stream threads, paced
            folder_chunk_offload.serve_admin_transaction(
                download.server.cell, downloader.tx_id, download.session.user_name
            )
        except Exception as e:
            logger.error(f"chunks of transaction {downloader.tx_id} stay with DownloadService: {type(e).__name__}: {e}")
        if not download.direct:
            return {}
        offer = _FolderOffer(download.server, downloader, download.session_mgr, download.session.sess_id, len(files))
        transfers = {}
        for rel_path, ref_id in files:
            transfer = download.open(
                os.path.join(tx_path, rel_path),
                downloader.tx_id,
                on_end=offer.ended,
                follow_path=False,
                released_with_path=True,
                group=offer.binding,  # one download: one lifetime, one progress
            )
            offer.transfer_ids.append(transfer[TRANSFER_ID])
            transfers[ref_id] = transfer
        if not download.session_mgr.bind_download(download.session.sess_id, offer.binding, offer.cancel):
            offer.cancel()
            return {}
        return {DIRECT_FILES: transfers}
    except Exception as e:
        logger.error(f"no direct download offered for transaction {downloader.tx_id}: {type(e).__name__}: {e}")
        if offer:
            offer.all_ok = False  # DownloadService keeps serving
            offer.cancel()
        return {}
