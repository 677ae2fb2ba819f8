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
"""Faults of the processes at both ends of a download: the server killed, restarted and
paused, the admin client killed, each while a 200 MiB component streams to fl_admin.

Behaviour test for admin-server-audit-refused-commands-and-sweep-stale-transfer-folders.patch
(its sweep half): without it the transaction folder of the download the killed server was
serving is still in the server's transfer directory after the restart.
"""

import os
import re
import signal
import threading

import pytest
from downloads import ConsoleDownload, console_download, download_under_way, wait_until, what_was_kept
from faults import BIG_COMPONENT, CLIENT_GIVE_UP, PROGRESS_TIMEOUT, SERVER_RELEASE
from job_components import sha256

pytestmark = [pytest.mark.system, pytest.mark.slow]

DOWNLOADED = re.compile(
    r"^downloaded (\S+) of job (\S+) to (\S+) \(\d+ bytes in [\d.]+s, [\d.]+ MiB/s, sha256 verified\)$", re.M
)


def downloaded_to(out: str) -> str:
    m = DOWNLOADED.search(out)
    assert m, out
    return m.group(3)


def failure(out: str, dest) -> str:
    """The console's failure line with the range offset that gave up replaced and its
    ending (what was kept for a resume) checked against ``dest`` and cut."""
    line = what_was_kept(ConsoleDownload.failure_line(out), dest, BIG_COMPONENT)
    return re.sub(r"range at offset \d+", "range at offset <n>", line)


def test_server_killed_mid_download_then_restarted(fault_system, big_job, tmp_path, reliability):
    system = fault_system
    stored = system.job_store_dir(big_job) / BIG_COMPONENT
    with system.session() as sess:
        listed_before = sess.list_job_component_info(big_job)
    dest = tmp_path / "dl"
    with download_under_way(system, big_job, BIG_COMPONENT, dest) as (download, serving):
        killed = system.kill_server()
        # Nothing is left to clean up after a crash: the transfer folder stays (until the restart).
        assert len(serving) == 1 and serving <= system.transfer_transactions()
        out, took = download.finish(timeout=CLIENT_GIVE_UP + 30)
    message = failure(out, dest)  # nothing, or a partial file to resume from
    # Which the client sees first depends on how fast the kit's watchdog restarts the server.
    assert message in [
        *(
            f"download of {BIG_COMPONENT} failed: lost the connection to the server (range at offset <n> failed "
            f"4 times, last: {rc})"
            for rc in ("comm_error", "target_unreachable", "timeout")
        ),
        f"download of {BIG_COMPONENT} failed: the server restarted during the download (no callback)",
    ], out
    assert took < CLIENT_GIVE_UP, f"the console needed {took:.1f}s to report the lost server"

    system.wait_for_restart(killed)  # by the kit's watchdog, startup/sub_start.sh
    assert not serving & system.transfer_transactions(), "the restarted server did not remove the dead transfer folder"
    with system.session() as sess:
        listed_after = sess.list_job_component_info(big_job)
    path = downloaded_to(console_download(system, big_job, BIG_COMPONENT, dest))
    assert path == str(dest / BIG_COMPONENT)
    assert (
        sha256(path) == sha256(stored) == listed_after[[c["name"] for c in listed_after].index(BIG_COMPONENT)]["sha256"]
    )
    assert os.listdir(dest) == [BIG_COMPONENT]  # the partial file, if any, became the final one
    reliability.record(
        "1",
        "fl_admin prints `download of MODEL_big failed: lost the connection to the server (... last: comm_error)` "
        "(or `... the server restarted during the download ...` when the watchdog was quicker) "
        f"within {CLIENT_GIVE_UP:.0f} s, then `; no file was kept` (destination empty) or, past the first 64 MiB "
        "block, `; the <n> bytes received so far are kept in <dest>/MODEL_big.part: run the same command again to "
        "resume`; the restarted server removes the dead transfer folder and the same command then succeeds with "
        "the recorded sha256, leaving only the final file",
    )

    # Restart durability: the publisher's model and the stored component, as before the crash.
    assert listed_after == listed_before
    published = system.job_store_dir(big_job) / "MODEL_global_model"
    with system.session() as sess:
        path = sess.download_job_component(big_job, "MODEL_global_model", str(tmp_path / "published"))
    record = listed_after[[c["name"] for c in listed_after].index("MODEL_global_model")]
    assert sha256(path) == sha256(published) == record["sha256"]
    reliability.record(
        "7",
        "after the restart list_job_component_info returns exactly what it returned before (names, sizes, sha256, "
        "formats); the published MODEL_global_model and MODEL_big download and verify",
    )


def test_admin_client_killed_mid_download(fault_system, big_job, tmp_path, reliability):
    system = fault_system
    dest = tmp_path / "dl"
    with download_under_way(system, big_job, BIG_COMPONENT, dest) as (download, serving):
        assert len(serving) == 1
        download.console.proc.kill()
        released = wait_until(lambda: not serving & system.transfer_transactions(), timeout=SERVER_RELEASE + 15)
    assert not (dest / BIG_COMPONENT).exists()  # the killed client's temp file never gets the final name
    with system.session() as sess:
        path = sess.download_job_component(big_job, BIG_COMPONENT, str(tmp_path / "other"))
    assert sha256(path) == sha256(system.job_store_dir(big_job) / BIG_COMPONENT)
    assert released < SERVER_RELEASE + 15
    reliability.record(
        "2",
        f"the server releases the transaction and removes its transfer folder within {SERVER_RELEASE + 15} s "
        f"({SERVER_RELEASE} s = admin_download_timeout + the 5 s sweep, plus margin); the next session's download "
        "succeeds; the killed client's temp file never gets the final name",
    )


def _pause_server(system, seconds: float) -> threading.Thread:
    proc = system.server_parent()
    proc.send_signal(signal.SIGSTOP)
    resume = threading.Timer(seconds, proc.send_signal, args=(signal.SIGCONT,))
    resume.start()
    return resume


def test_short_stall_download_completes(fault_system, big_job, tmp_path, reliability):
    system = fault_system
    dest = tmp_path / "dl"
    with download_under_way(system, big_job, BIG_COMPONENT, dest) as (download, _):
        resume = _pause_server(system, PROGRESS_TIMEOUT - 1)
        out, _ = download.finish(timeout=300)
        resume.join()
    assert sha256(downloaded_to(out)) == sha256(system.job_store_dir(big_job) / BIG_COMPONENT)
    assert os.listdir(dest) == [BIG_COMPONENT]
    reliability.record("3a", "the download completes, sha256 verified; only the final file in the destination")


def test_long_stall_fails_cleanly(fault_system, big_job, tmp_path, reliability):
    system = fault_system
    dest = tmp_path / "dl"
    with download_under_way(system, big_job, BIG_COMPONENT, dest) as (download, serving):
        resume = _pause_server(system, CLIENT_GIVE_UP + 9)
        try:
            out, took = download.finish(timeout=CLIENT_GIVE_UP + 30)
        finally:
            resume.join()
    assert failure(out, dest) == (
        f"download of {BIG_COMPONENT} failed: the server did not answer a chunk request within 3 s, 4 times in a row "
        "(file_download_progress_timeout in the admin kit's fed_admin.json) (range at offset <n> failed 4 times, "
        "last: timeout)"
    ), out
    assert CLIENT_GIVE_UP - 3 < took < CLIENT_GIVE_UP + 5, took
    wait_until(lambda: not serving & system.transfer_transactions(), timeout=SERVER_RELEASE + 10)
    with system.session() as sess:
        path = sess.download_job_component(big_job, "MODEL_global_model", str(tmp_path / "after"))
    assert sha256(path) == sha256(system.job_store_dir(big_job) / "MODEL_global_model")
    reliability.record(
        "3b",
        f"after {CLIENT_GIVE_UP:.0f} s fl_admin prints `download of MODEL_big failed: the server did not answer a "
        "chunk request within 3 s, 4 times in a row (file_download_progress_timeout ...)`, then what was kept "
        "as in row 1; once resumed the server drops the transaction and serves the next download",
    )
