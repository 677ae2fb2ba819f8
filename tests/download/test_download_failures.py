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
"""The plain-words cause in front of every range-transfer failure the admin client reports.

The reliability scenarios reach some of these through real faults; this table pins the
exact text of each, including the ones no fault here produces on demand.
"""

import pytest

from nvflare.fuel.hci.client.download_failures import explain_failure

CASES = [
    (
        "range at offset 0 failed 4 times, last: timeout",
        "the server did not answer a chunk request within 5 s, 4 times in a row (file_download_progress_timeout "
        "in the admin kit's fed_admin.json) (range at offset 0 failed 4 times, last: timeout)",
    ),
    (
        "range at offset 1048576 failed 4 times, last: comm_error",
        "lost the connection to the server (range at offset 1048576 failed 4 times, last: comm_error)",
    ),
    (
        "range at offset 0 failed 4 times, last: target_unreachable",
        "lost the connection to the server (range at offset 0 failed 4 times, last: target_unreachable)",
    ),
    (
        "cannot read the component: it is no longer in the job store",
        "the server could not read the component any more (was the job deleted?) "
        "(cannot read the component: it is no longer in the job store)",
    ),
    (
        "no such transfer: it ended, expired, or belongs to another admin",
        "the server no longer has this transfer (it expired or the server restarted) "
        "(no such transfer: it ended, expired, or belongs to another admin)",
    ),
    ("no callback", "the server restarted during the download (no callback)"),
    ("aborted", "aborted"),  # unknown reasons are passed through unchanged
]


@pytest.mark.parametrize("reason, shown", CASES, ids=[c[0][:30] for c in CASES])
def test_each_failure_reads_as_its_cause(reason, shown):
    assert explain_failure(reason, 5.0) == shown
