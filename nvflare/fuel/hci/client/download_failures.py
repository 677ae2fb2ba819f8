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
"""Say in plain words why a component download failed.

Transfers report failures as cell return codes or server texts ("range at offset
1048576 failed 4 times, last: comm_error"); correct, but an operator whose download just
died wants to know what happened and what to change. The hint goes in front, the
original reason stays in brackets for support.
"""

from nvflare.fuel.f3.cellnet.defs import ReturnCode
from nvflare.fuel.hci.client.component_range_reader import ATTEMPTS


def _hints(progress_timeout: float) -> list:
    lost = "lost the connection to the server"
    unreadable = "the server could not read the component any more (was the job deleted?)"
    return [
        (
            f": {ReturnCode.TIMEOUT}",
            f"the server did not answer a chunk request within {progress_timeout:g} s, {ATTEMPTS} times "
            f"in a row (file_download_progress_timeout in the admin kit's fed_admin.json)",
        ),
        (f": {ReturnCode.COMM_ERROR}", lost),
        (f": {ReturnCode.TARGET_UNREACHABLE}", lost),
        ("cannot read the component", unreadable),
        ("no such transfer", "the server no longer has this transfer (it expired or the server restarted)"),
        # A restarted server answers range requests before any transfer exists: nothing handles them yet.
        ("no callback", "the server restarted during the download"),
    ]


def explain_failure(reason: str, progress_timeout: float) -> str:
    """``reason`` with a plain-words cause in front when it is a known one."""
    for marker, hint in _hints(progress_timeout):
        if marker in reason:
            return f"{hint} ({reason})"
    return reason
