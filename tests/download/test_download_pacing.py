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
"""admin_download_rate_limit: one server-wide pace for all admin downloads while a job runs
(download_pacing).

A system of its own (one client) whose resources.json sets admin_download_rate_limit=10
(MB/s, the minimum). With no job running a download is not paced: it must beat the time
the cap would need. While a job runs (a numpy job whose client sleeps in its task), real
downloads through the FLARE API (direct HTTPS response), two at once, and raw ranges
through the admin cell must each take at least the time the cap allows for their bytes:
lower bounds (a loaded host only makes downloads slower), with a generous upper bound so a
cap that stalls downloads fails too; upstream's DownloadService chunks of a folder download
too (folder_chunk_offload). Unpaced, the same host moves these sizes in well
under a second (docs/performance.md), so a lost pace fails the lower bounds. Bad values
stop the server at startup with the message checked exactly.
"""

import contextlib
import hashlib
import os
import re
import subprocess
import sys
import threading
import time

import pytest
from flare_system import PROJECT_ADMIN, tuned_system
from job_components import JobStore, sha256, write_numpy_job

from nvflare.fuel.hci.client.component_range_reader import RangeSource
from nvflare.fuel.hci.job_component_defs import RANGE_TRANSFER

MB = 1000 * 1000
MIB = 1024 * 1024
RATE = 10  # MB/s
SIZE = 60 * MB + 123
ENDED = re.compile(r"range transfer \w+ ended \(ok\) after \d+ bytes served \((\d+) direct\)")
SLACK = 0.85  # the pacer lets the first block go at once: a little under size / rate


@pytest.fixture(scope="module")
def paced(tmp_path_factory):
    with tuned_system(tmp_path_factory, "paced", settings={"admin_download_rate_limit": RATE}) as system:
        job_id, meta = system.submit_and_wait(write_numpy_job(system.root / "job", n_clients=1))
        assert meta["status"] == "FINISHED:COMPLETED", meta
        data = os.urandom(SIZE)
        JobStore(system.jobs_storage).put(job_id, "MODEL_paced", data)
        yield system, job_id, data


@pytest.fixture(scope="module")
def training(paced, tmp_path_factory):
    """A job that stays RUNNING (its client sleeps in the train task) while the tests download."""
    system, job_id, data = paced
    folder = write_numpy_job(tmp_path_factory.mktemp("training"), name="sleeper", n_clients=1, train_seconds=900)
    with system.session() as sess:
        running = sess.submit_job(str(folder))
        deadline = time.time() + 120
        while sess.get_job_meta(running).get("status") != "RUNNING":
            assert time.time() < deadline, f"the job did not start\n{system.tail_console()}"
            time.sleep(0.5)
    time.sleep(3)  # the server parent has started the job's process
    yield system, job_id, data
    # The last test restarts the server with a bad setting: nothing to abort then.
    with contextlib.suppress(Exception), system.session(timeout=10) as sess:
        sess.abort_job(running)


def download(system, job_id, dest, results, key):
    with system.session() as sess:
        started = time.time()
        path = sess.download_job_component(job_id, "MODEL_paced", str(dest))
        results[key] = (time.time() - started, path)


def direct_bytes_served(system) -> int:
    log = (system.server_dir / "log.txt").read_text()
    return sum(int(n) for n in ENDED.findall(log))


@pytest.mark.system
@pytest.mark.slow
def test_no_job_running_no_pace(paced, tmp_path):
    system, job_id, data = paced  # its one job has finished: nothing runs
    results = {}
    download(system, job_id, tmp_path, results, "free")
    seconds, path = results["free"]
    assert sha256(path) == sha256_of(data)
    assert seconds < SLACK * SIZE / (RATE * MB), seconds


@pytest.mark.system
@pytest.mark.slow
def test_one_direct_download_keeps_to_the_cap(training, tmp_path):
    system, job_id, data = training
    before = direct_bytes_served(system)
    results = {}
    download(system, job_id, tmp_path, results, "one")
    seconds, path = results["one"]
    assert sha256(path) == sha256_of(data)
    time.sleep(1)
    assert direct_bytes_served(system) - before == SIZE  # the direct route, not ranges
    assert SLACK * SIZE / (RATE * MB) <= seconds < 60, seconds


@pytest.mark.system
@pytest.mark.slow
def test_two_downloads_share_the_cap(training, tmp_path):
    system, job_id, data = training
    results = {}
    threads = []
    for key in ("a", "b"):
        (tmp_path / key).mkdir()
        threads.append(threading.Thread(target=download, args=(system, job_id, tmp_path / key, results, key)))
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    together = time.time() - started
    assert set(results) == {"a", "b"}, results
    for seconds, path in results.values():
        assert sha256(path) == sha256_of(data)
    # 2 x SIZE through one pace: the pair cannot finish before 2 * SIZE / rate
    assert SLACK * 2 * SIZE / (RATE * MB) <= together < 120, together


@pytest.mark.system
@pytest.mark.slow
def test_ranges_keep_to_the_same_cap(training):
    system, job_id, data = training
    with system.session() as sess:
        result = sess.api.server_execute(f"download_job_component {job_id} MODEL_paced")
        meta = result["meta"]
        assert meta["status"] == "ok", result
        source = RangeSource(sess.api.cell, meta[RANGE_TRANSFER], timeout=30.0)
        length = 16 * MIB
        started = time.time()
        got = b"".join(source.fetch(offset, MIB) for offset in range(0, length, MIB))
        seconds = time.time() - started
        source.end("ok")
    assert got == data[:length]
    assert SLACK * length / (RATE * MB) <= seconds < 60, seconds


@pytest.mark.system
@pytest.mark.slow
def test_folder_chunks_keep_to_the_same_cap(training, tmp_path):
    """download_job_components pulled the upstream way (DownloadService chunks only): its
    chunks are paced too, in the fork's download threads (folder_chunk_offload)."""
    from nvflare.fuel.f3.streaming.file_downloader import download_file
    from nvflare.fuel.hci.proto import MetaKey

    system, job_id, data = training
    with system.session() as sess:
        meta = sess.api.server_execute(f"download_job_components {job_id}")["meta"]
        (ref_id,) = [ref for rel_path, ref in meta[MetaKey.FILES] if rel_path.endswith("MODEL_paced")]
        started = time.time()
        error, path = download_file(meta[MetaKey.SOURCE_FQCN], ref_id, 30.0, sess.api.cell, location=str(tmp_path))
        seconds = time.time() - started
    assert error is None, error
    assert sha256(path) == sha256_of(data)
    assert SLACK * SIZE / (RATE * MB) <= seconds < 60, seconds


@pytest.mark.system
@pytest.mark.slow
def test_folder_chunks_beyond_the_account_bound_are_refused(training):
    """12 chunk requests of one account at once, each paced for 0.5 s (5 MiB at 10 MB/s):
    admin_download_ranges_per_user (8) are admitted at a time, the rest refused at once."""
    from concurrent.futures import ThreadPoolExecutor

    from nvflare.fuel.f3.cellnet.defs import MessageHeaderKey, ReturnCode
    from nvflare.fuel.f3.streaming.download_service import request_download_chunk
    from nvflare.fuel.hci.proto import MetaKey
    from nvflare.private.fed.server.folder_chunk_offload import busy_message

    system, job_id, _ = training
    with system.session() as sess:
        meta = sess.api.server_execute(f"download_job_components {job_id}")["meta"]
        (ref_id,) = [ref for rel_path, ref in meta[MetaKey.FILES] if rel_path.endswith("MODEL_paced")]

        def ask(_):
            t0 = time.time()
            reply = request_download_chunk(meta[MetaKey.SOURCE_FQCN], ref_id, None, 30.0, sess.api.cell)
            rc = reply.get_header(MessageHeaderKey.RETURN_CODE, ReturnCode.OK)
            return rc, reply.get_header(MessageHeaderKey.ERROR), time.time() - t0

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(ask, range(12)))
    refused = [a for a in answers if a[0] != ReturnCode.OK]
    # 8 at a time: more than 8 in all when the first were answered before the last arrived
    assert refused and len(answers) - len(refused) >= 8, answers
    expected = busy_message(PROJECT_ADMIN, 8)
    assert expected == (
        "chunk refused: the account admin@nvidia.com already has 8 download chunk requests in flight "
        "(admin_download_ranges_per_user = 8); ask for the next chunk when one is answered"
    )
    assert {(rc, error) for rc, error, _ in refused} == {(ReturnCode.SERVICE_UNAVAILABLE, expected)}, refused
    assert max(seconds for _, _, seconds in refused) < 1.0, answers  # at once: the 8th admitted waits ~3.5 s


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


RATE_CHECK = (
    "from nvflare.fuel.hci.server.download_settings import admin_download_rate_limit as r\n"
    "try:\n    print(r())\nexcept Exception as e:\n    print(type(e).__name__ + ': ' + str(e))\n"
)
WHERE = (
    "admin_download_rate_limit (server local/resources.json, --set admin_download_rate_limit=..., or env "
    "NVFLARE_ADMIN_DOWNLOAD_RATE_LIMIT)"
)


@pytest.mark.parametrize(
    "value, printed",
    [
        (None, "30000000.0"),
        ("0", "0.0"),
        ("250", "250000000.0"),
        ("5", f"ConfigError: invalid {WHERE}: 5.0 must be 0 (no limit) or a number of MB/s from 10 to 1e+06"),
        ("-1", f"ConfigError: invalid {WHERE}: -1.0 must be 0 (no limit) or a number of MB/s from 10 to 1e+06"),
        ("nan", f"ConfigError: invalid {WHERE}: nan must be 0 (no limit) or a number of MB/s from 10 to 1e+06"),
        (
            "fast",
            f"ConfigError: invalid {WHERE}: var admin_download_rate_limit's value 'fast' cannot be converted to "
            "float: could not convert string to float: 'fast'",
        ),
    ],
)
def test_rate_limit_values_and_messages(value, printed):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NVFLARE_ADMIN_DOWNLOAD")}
    if value is not None:
        env["NVFLARE_ADMIN_DOWNLOAD_RATE_LIMIT"] = value
    out = subprocess.run([sys.executable, "-c", RATE_CHECK], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == printed, out.stderr


@pytest.mark.system
@pytest.mark.slow
def test_bad_rate_limit_stops_the_server_at_startup(paced):
    """Runs last in this module: restarts the server with a rate below the minimum."""
    system, _, _ = paced
    system.stop()
    system.set_server_settings(admin_download_rate_limit=2.5)
    system.restart_server_expecting(
        f"ConfigError: invalid {WHERE}: 2.5 must be 0 (no limit) or a number of MB/s from 10 to 1e+06"
    )
