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
"""One file of upstream's folder downloads (download_job, download_job_components), direct.

FileTransferModule.pull_folder pulls each file of the server's reply with the
``pull_binary_file`` command (DownloadService, 5 MiB request/reply chunks). When the
server of this fork also offered the file by the direct route, this fetches it as one
HTTPS response into the very path pull_binary_file would write, and returns the reply
pull_binary_file would have returned, so pull_folder goes on unchanged (zips are still
unzipped after the last file). None means "not offered or it failed": pull_folder then
pulls the file from DownloadService as upstream does; a partly written file is removed
first. Upstream's folder downloads carry no sha256, so the size is what is checked.
"""

import os
from typing import Optional

from nvflare.fuel.hci.client.api_status import APIStatus
from nvflare.fuel.hci.client.component_direct_reader import (
    DirectAborted,
    DirectUnavailable,
    direct_endpoint,
    read_direct,
)
from nvflare.fuel.hci.client.component_range_reader import RangeSource
from nvflare.fuel.hci.client.event import EventType
from nvflare.fuel.hci.job_component_defs import DIRECT_FILES, DIRECT_ROUTE, TRANSFER_ID, TRANSFER_SIZE
from nvflare.fuel.hci.proto import ProtoKey


def pull_file_direct(api, meta: dict, file_entry, tx_path: str) -> Optional[dict]:
    """pull_binary_file's reply for ``file_entry`` ([name, ref_id]) fetched directly, or None."""
    offers = meta.get(DIRECT_FILES) if isinstance(meta, dict) else None
    file_name, ref_id = file_entry[0], file_entry[1]
    transfer = offers.get(ref_id) if isinstance(offers, dict) else None
    endpoint = direct_endpoint(api.cell) if isinstance(transfer, dict) else None
    if not endpoint:
        return None
    path = os.path.join(tx_path, file_name)
    abort_signal = getattr(api, "session_abort_signal", None)
    source = RangeSource(api.cell, transfer, api.file_download_progress_timeout, abort_signal)
    status = "failed"
    api.fire_session_event(EventType.BEFORE_DOWNLOAD_FILE, f"downloading {file_name} ...")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb", buffering=0) as f:
            read_direct(
                endpoint,
                transfer[DIRECT_ROUTE],
                transfer[TRANSFER_ID],
                transfer[TRANSFER_SIZE],
                f.write,
                api.file_download_progress_timeout,
                abort_signal,
            )
        status = "ok"
    except (DirectUnavailable, DirectAborted, OSError) as e:
        status = f"failed: {e}"[:200]
        api.debug(f"direct download of {file_name} failed, pulling it the upstream way: {e}")
        if os.path.lexists(path):
            os.unlink(path)
        return None
    finally:
        source.end(status)
    api.fire_session_event(
        EventType.AFTER_DOWNLOAD_FILE, f"downloaded {file_name} ({transfer[TRANSFER_SIZE]} bytes) directly"
    )
    reply = {ProtoKey.STATUS: APIStatus.SUCCESS, ProtoKey.DETAILS: "OK"}
    if os.path.splitext(path)[1] == ".zip":
        reply[ProtoKey.APP_DATA] = path  # pull_folder unzips it after the last file
    return reply
