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
"""Faults at the two ends of the bytes: a destination that cannot take the file, a stored
component changed after it was recorded, and the job deleted while its model streams."""

import os
import re
import signal

import pytest
from downloads import (
    ConsoleDownload,
    api_result,
    console_download,
    download_under_way,
    start_api_download,
    wait_until,
    what_was_kept,
)
from faults import BIG_COMPONENT, SERVER_RELEASE, new_job_with_big_model
from job_components import JobStore, sha256

from nvflare.fuel.flare_api.api_spec import JobNotFound

pytestmark = [pytest.mark.system, pytest.mark.slow]

RUNTIME_ERROR = "RuntimeError: runtime error encountered: APIStatus.ERROR_RUNTIME: "


def test_destination_full(fault_system, big_job, tmp_path, reliability):
    """The downloading process may write 50 MiB per file (RLIMIT_FSIZE): the disk is 'full' at 50 MiB."""
    system = fault_system
    dest = tmp_path / "dl"
    before = system.transfer_transactions()
    result = api_result(start_api_download(system, big_job, BIG_COMPONENT, dest, file_size_limit=50 * 1024 * 1024))
    assert result == {
        "error": RUNTIME_ERROR + f"download of {BIG_COMPONENT} failed: could not write the file at the destination "
        "(OSError: [Errno 27] File too large); no file was kept"
    }
    assert os.listdir(dest) == []
    released = wait_until(lambda: not system.transfer_transactions() - before, timeout=SERVER_RELEASE + 10)
    with system.session() as sess:  # the server is unaffected
        path = sess.download_job_component(big_job, BIG_COMPONENT, str(tmp_path / "fine"))
    assert sha256(path) == sha256(system.job_store_dir(big_job) / BIG_COMPONENT)
    reliability.record(
        "5",
        "`download of MODEL_big failed: could not write the file at the destination "
        f"(OSError: [Errno 27] File too large); no file was kept`; destination empty; transaction released within "
        f"{SERVER_RELEASE + 10} s; the next download succeeds",
    )
    assert released < SERVER_RELEASE + 10


def _corrupt(path, how: str):
    size = os.path.getsize(path)
    if how == "flipped":
        with open(path, "r+b") as f:
            f.seek(size // 2)
            byte = f.read(1)
            f.seek(size // 2)
            f.write(bytes([byte[0] ^ 0xFF]))
    else:
        os.truncate(path, size // 2)


@pytest.mark.parametrize("how", ["flipped", "truncated"])
def test_corrupted_component_fails_verification(fault_system, big_job, tmp_path, how, reliability):
    system = fault_system
    component = f"MODEL_{how}"
    record = JobStore(system.jobs_storage).put(big_job, component, os.urandom(4 * 1024 * 1024))
    stored = system.job_store_dir(big_job) / component
    _corrupt(stored, how)
    dest = tmp_path / "dl"
    with system.session() as sess:
        with pytest.raises(RuntimeError) as e:
            sess.download_job_component(big_job, component, str(dest))
    if how == "flipped":  # same size: caught by the sha256 of the received bytes
        expected = (
            f"download of {component} failed verification: received {stored.stat().st_size} bytes with sha256 "
            f"{sha256(stored)}, the server recorded {record['size']} bytes with sha256 {record['sha256']}; "
            "no file was kept"
        )
    else:  # another size: refused before any byte moves
        expected = (
            f"download of {component} failed verification: the server holds {stored.stat().st_size} bytes for it "
            f"but recorded {record['size']}; no file was kept"
        )
    assert str(e.value) == f"runtime error encountered: APIStatus.ERROR_RUNTIME: {expected}"
    assert not dest.exists() or os.listdir(dest) == []
    out = console_download(system, big_job, component, dest, timeout=60)
    assert expected in out, out
    assert not dest.exists() or os.listdir(dest) == []
    reliability.record(
        "6",
        "console and FLARE API: `download of MODEL_<name> failed verification: received <n> bytes with sha256 <x>, "
        "the server recorded <m> bytes with sha256 <y>; no file was kept` (changed bytes), or `... failed "
        "verification: the server holds <n> bytes for it but recorded <m>; no file was kept` before any byte moves "
        "(truncated); nothing under the final name",
    )


def test_job_deleted_while_downloading(fault_system, big_file, tmp_path, reliability):
    system = fault_system
    job_id = new_job_with_big_model(system, big_file, tmp_path / "job")
    dest = tmp_path / "dl"
    with system.session() as sess:
        with download_under_way(system, job_id, BIG_COMPONENT, dest) as (download, serving):
            # Hold the receiver still while the job goes, so the deletion lands mid-transfer.
            download.console.proc.send_signal(signal.SIGSTOP)
            try:
                sess.delete_job(job_id)
            finally:
                download.console.proc.send_signal(signal.SIGCONT)
            out, _ = download.finish(timeout=60)
            after = [
                download.console.run(f"download_job_component {job_id} {BIG_COMPONENT}"),
                download.console.run(f"list_job_component_info {job_id}"),
            ]
        with pytest.raises(JobNotFound):
            sess.list_job_component_info(job_id)
    message = what_was_kept(ConsoleDownload.failure_line(out), dest, BIG_COMPONENT)
    assert message == (
        f"download of {BIG_COMPONENT} failed: the server could not read the component any more (was the job "
        "deleted?) (cannot read the component: it is no longer in the job store)"
    ), out
    for printed in after:
        assert printed.split("\n")[0] == f"Error: no such job: {job_id}", printed
    assert not system.job_store_dir(job_id).exists()
    wait_until(lambda: not serving & system.transfer_transactions(), timeout=SERVER_RELEASE + 10)
    reliability.record(
        "8",
        "`download of MODEL_big failed: the server could not read the component any more (was the job deleted?) "
        "(cannot read the component: it is no longer in the job store)` and what was kept as in row 1; then "
        "`Error: no such job: <id>` for the "
        "download and the listing; store folder and transfer folder gone",
    )
