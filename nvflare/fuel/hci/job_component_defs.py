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
"""The wire names of the job component commands: the server and the admin client are separate
installs that must agree on these strings, so both import them from here instead of spelling
them twice.

- download_job_component and list_job_component_info: the client handler, the reply meta
  (what the server command, the admin client handler and the FLARE API share);
- the transfer behind download_job_component: the range requests over cell messages (the
  server's component_transfer_server and the admin client's range reader) and the direct
  route (one HTTPS response on the server's listener);
- TAB completion of these commands' arguments (and backfill_job_model's): one hidden command
  asks the server which job ids, or which components of a job, this user may use.
"""

from nvflare.apis.fl_constant import AdminCommandNames
from nvflare.fuel.f3.cellnet.defs import CellChannel, ReturnCode
from nvflare.fuel.hci.model_backfill_defs import BACKFILL_JOB_MODEL

# --- download_job_component, list_job_component_info

# Client-side handler of download_job_component (a FileTransferModule handler).
PULL_COMPONENT_FQN = "file_transfer.pull_component"

# Reply meta keys.
COMPONENT_RECORD = "component_record"  # {sha256, size, file_name, [format], recorded}
COMPONENT_INFO = "component_info"  # [{name, kind, size, [sha256, file_name, format]}]

# In COMPONENT_RECORD: True when the record comes from the job store (written by the
# publisher), False when the server measured the stored bytes for this download.
RECORDED = "recorded"

# --- the transfer: ranges over cell messages, and the direct route

# The server main channel does not stream: a reply is one plain cell message, with no
# per-reply stream state on either side (see component_transfer_server).
RANGE_CHANNEL = CellChannel.SERVER_MAIN
RANGE_TOPIC = "fork.download_job_component.range"

# Request payload keys.
TRANSFER_ID = "transfer_id"
OFFSET = "offset"
LENGTH = "length"
END = "end"  # the receiver is done: "ok" or the reason it stopped

# Reply meta key of download_job_component: where and how to fetch the ranges.
RANGE_TRANSFER = "range_transfer"
# ... and its keys (besides TRANSFER_ID).
SOURCE_FQCN = "source_fqcn"
TRANSFER_SIZE = "size"
MAX_LENGTH = "max_length"
# Present when the server also serves the transfer as one HTTPS response on its listener:
# the URL path (see nvflare/fuel/f3/drivers/direct_download_route.py).
DIRECT_ROUTE = "direct_route"

# The return code of a range refused because its transfer or account has as many range
# requests in flight as the server admits (admin_download_ranges_per_transfer / _per_user):
# asking again once a reply came in succeeds, so the admin client retries it. The server
# answers at once and the wire protocol is otherwise upstream's request/reply, so an older
# fork client works unchanged (it only gives up on this code instead of retrying).
RANGE_BUSY_CODE = ReturnCode.SERVICE_UNAVAILABLE

# Largest range one reply may carry. Replies travel as single frames, and aiohttp's client
# websocket (the "http" scheme) drops the connection on a message over 4 MiB.
MAX_RANGE_LENGTH = 2 * 1024 * 1024

# Reply meta key of upstream's folder downloads (download_job, download_job_components):
# {DownloadService ref id: transfer (the keys above, with DIRECT_ROUTE)} for the files the
# server also offers by the direct route (see nvflare/private/fed/server/direct_folder_offer.py).
DIRECT_FILES = "fork_direct_files"

# --- TAB completion of the job component commands' arguments

# _complete_job_args <command> jobs [job id prefix]  |  _complete_job_args <command> components <job id>
COMPLETE_JOB_ARGS = "_complete_job_args"  # "_": internal, not in the console's command list
JOBS = "jobs"
COMPONENTS = "components"

# The commands whose arguments are completed: command -> what its arguments are, in order.
COMPLETED_COMMANDS = {
    AdminCommandNames.DOWNLOAD_JOB_COMPONENT: (JOBS, COMPONENTS),
    AdminCommandNames.LIST_JOB_COMPONENT_INFO: (JOBS,),
    BACKFILL_JOB_MODEL: (JOBS,),
}

# Reply meta keys.
CANDIDATES = "completion_candidates"  # [{"value": id or name, "info": one line about it}]
TRUNCATED = "completion_truncated"  # True: more matched than MAX_CANDIDATES

# At most this many candidates per reply (most recent jobs first): type more of the id for the rest.
MAX_CANDIDATES = 100
