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
"""admin_download_timeout / admin_download_chunk_size on real systems, with real stalled
receivers pulling through DownloadService (download_job_components) and through the range
transfer of download_job_component (the timeout only: its ranges are the receiver's choice).

Behaviour test for binary-transfer-configurable-admin-download-timeout-and-chunk-size.patch:
without it the tuned system below keeps 5 MiB chunks and a 1805 s timeout, so the chunk
size and expiry tests fail, and bad values do not stop the server.

A second, small system (one client) is started for this module: its resources.json sets
admin_download_timeout=3600, admin_download_chunk_size=65536 and admin_download_direct=false
(so its downloads show the range transfer), and its environment sets
NVFLARE_ADMIN_DOWNLOAD_TIMEOUT=4, which must win over resources.json.
"""

import hashlib
import os
import re
import subprocess
import sys
import time

import pytest
from flare_system import tuned_system
from job_components import JobStore, sha256, write_numpy_job

from nvflare.fuel.f3.streaming.download_service import Consumer, download_object
from nvflare.fuel.hci.client.component_range_reader import RangeRefused, RangeSource
from nvflare.fuel.hci.job_component_defs import DIRECT_ROUTE, RANGE_TRANSFER

pytestmark = [pytest.mark.system, pytest.mark.slow]

SHORT_TIMEOUT = 4
CHUNK = 65536
STALL = 15  # > SHORT_TIMEOUT + DownloadService's 5 s sweep


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    # direct off: this system shows the range transfer alone (and the setting working)
    settings = {"admin_download_timeout": 3600, "admin_download_chunk_size": CHUNK, "admin_download_direct": False}
    env = {"NVFLARE_ADMIN_DOWNLOAD_TIMEOUT": str(SHORT_TIMEOUT)}
    with tuned_system(tmp_path_factory, "tuned", settings=settings, env=env) as system:
        job_id, meta = system.submit_and_wait(write_numpy_job(system.root / "job", n_clients=1))
        assert meta["status"] == "FINISHED:COMPLETED", meta
        store = JobStore(system.jobs_storage)
        store.put(job_id, "MODEL_global_model", os.urandom(2 * 1024 * 1024))
        for i in range(3):
            store.put(job_id, f"LOG_part{i}", os.urandom(24 * 1024 * 1024), record=False)
        yield system, job_id


class StallingConsumer(Consumer):
    """A receiver that stops after its first chunk for ``stall`` seconds, then goes on."""

    def __init__(self, stall: float):
        super().__init__()
        self.stall = stall
        self.chunks = []
        self.digest = hashlib.sha256()
        self.error = None
        self.done = False

    def consume(self, ref_id, state, data):
        if not self.chunks:
            time.sleep(self.stall)
        self.chunks.append(len(data))
        self.digest.update(data)
        return state

    def download_completed(self, ref_id):
        self.done = True

    def download_failed(self, ref_id, reason):
        self.error = reason


def start_download(sess, job_id, component):
    """The server half of download_job_components, as upstream's admin client sends it;
    the meta of the one file that is ``component``."""
    result = sess.api.server_execute(f"download_job_components {job_id}")
    meta = result["meta"]
    assert meta["status"] == "ok", result
    (ref_id,) = [ref for name, ref in meta["files"] if name == component]
    return {**meta, "ref_id": ref_id}


def pull(sess, meta, consumer):
    download_object(
        from_fqcn=meta["source_fqcn"],
        ref_id=meta["ref_id"],
        per_request_timeout=5.0,
        cell=sess.api.cell,
        consumer=consumer,
    )


def start_range_transfer(sess, job_id, component):
    """The server half of download_job_component: (its meta, a RangeSource for it)."""
    result = sess.api.server_execute(f"download_job_component {job_id} {component}")
    meta = result["meta"]
    assert meta["status"] == "ok", result
    return meta, RangeSource(sess.api.cell, meta[RANGE_TRANSFER], timeout=5.0)


def range_tx_dir(system, job_id) -> list:
    """The server's transaction folders that hold ``job_id`` (one per download in flight)."""
    return [d for d in (system.server_dir / "transfer").iterdir() if (d / job_id).exists()]


def tx_dir(system, meta):
    """What upstream's clean-up removes: <transfer>/<tx_id>/<job_id> (it leaves <tx_id>)."""
    return system.server_dir / "transfer" / meta["tx_id"] / meta["folder_name"]


def test_chunk_size_from_resources_json(tuned):
    system, job_id = tuned
    with system.session() as sess:
        meta = start_download(sess, job_id, "MODEL_global_model")
        consumer = StallingConsumer(stall=0)
        pull(sess, meta, consumer)
    assert consumer.done and consumer.error is None
    assert consumer.chunks == [CHUNK] * (2 * 1024 * 1024 // CHUNK)
    assert consumer.digest.hexdigest() == sha256(system.job_store_dir(job_id) / "MODEL_global_model")


def test_short_timeout_expires_a_stalled_transfer_and_cleans_up(tuned):
    system, job_id = tuned
    with system.session() as sess:
        meta = start_download(sess, job_id, "MODEL_global_model")
        assert (tx_dir(system, meta) / "MODEL_global_model").is_symlink()  # streamed from the store
        consumer = StallingConsumer(stall=STALL)
        pull(sess, meta, consumer)
    assert not consumer.done
    assert consumer.error, "the transfer should have expired during the stall"
    assert not tx_dir(system, meta).exists()
    assert (system.job_store_dir(job_id) / "MODEL_global_model").is_file()  # the store is untouched


def test_long_timeout_survives_a_stall(flare_system, tmp_path):
    """The shared system keeps the default (1805 s of inactivity)."""
    job_id, _ = flare_system.submit_and_wait(write_numpy_job(tmp_path / "job"))
    data = os.urandom(12 * 1024 * 1024)
    JobStore(flare_system.jobs_storage).put(job_id, "MODEL_global_model", data)
    with flare_system.session() as sess:
        meta = start_download(sess, job_id, "MODEL_global_model")
        consumer = StallingConsumer(stall=STALL)
        pull(sess, meta, consumer)
        for name, ref in meta["files"]:  # the transaction ends when all its files are pulled
            if name != "MODEL_global_model":
                pull(sess, {**meta, "ref_id": ref}, StallingConsumer(stall=0))
    assert consumer.done and consumer.error is None
    assert consumer.digest.hexdigest() == hashlib.sha256(data).hexdigest()
    deadline = time.time() + 10
    while tx_dir(flare_system, meta).exists() and time.time() < deadline:
        time.sleep(0.2)
    assert not tx_dir(flare_system, meta).exists()


def test_short_timeout_expires_a_stalled_range_transfer_and_cleans_up(tuned):
    system, job_id = tuned
    with system.session() as sess:
        _, source = start_range_transfer(sess, job_id, "MODEL_global_model")
        (tx,) = range_tx_dir(system, job_id)
        assert (tx / job_id / "MODEL_global_model").is_symlink()  # served from the store
        assert len(source.fetch(0, CHUNK)) == CHUNK
        time.sleep(SHORT_TIMEOUT + 3)  # the range server looks for idle transfers every second
        with pytest.raises(RangeRefused) as e:
            source.fetch(CHUNK, CHUNK)
    assert str(e.value) == "no such transfer: it ended, expired, or belongs to another admin"
    assert not tx.exists()
    assert (system.job_store_dir(job_id) / "MODEL_global_model").is_file()
    assert "ended (expired) after 65536 bytes served" in (system.server_dir / "log.txt").read_text()


def test_long_timeout_survives_a_stalled_range_transfer(flare_system, tmp_path):
    job_id, _ = flare_system.submit_and_wait(write_numpy_job(tmp_path / "job"))
    data = os.urandom(3 * 1024 * 1024 + 5)
    JobStore(flare_system.jobs_storage).put(job_id, "MODEL_global_model", data)
    with flare_system.session() as sess:
        _, source = start_range_transfer(sess, job_id, "MODEL_global_model")
        (tx,) = range_tx_dir(flare_system, job_id)
        first = source.fetch(0, 1024 * 1024)
        time.sleep(STALL)
        rest = [source.fetch(o, min(1024 * 1024, len(data) - o)) for o in range(1024 * 1024, len(data), 1024 * 1024)]
        assert b"".join([first, *rest]) == data
        source.end("ok")
    assert not tx.exists()


def test_direct_off_sends_components_by_ranges(tuned, tmp_path):
    system, job_id = tuned
    with system.session() as sess:
        meta = sess.api.server_execute(f"download_job_component {job_id} MODEL_global_model")["meta"]
        assert DIRECT_ROUTE not in meta[RANGE_TRANSFER], meta
        RangeSource(sess.api.cell, meta[RANGE_TRANSFER], timeout=10).end("ok")
        path = sess.download_job_component(job_id, "MODEL_global_model", str(tmp_path))
    assert sha256(path) == sha256(system.job_store_dir(job_id) / "MODEL_global_model")
    log = (system.server_dir / "log.txt").read_text()
    assert re.findall(r"ended \(ok\) after (\d+) bytes served \((\d+) direct\)", log)[-1] == (str(2 * 1024 * 1024), "0")


def test_multi_component_download_outlasts_the_timeout(tuned):
    """download_job_components of 3 x 24 MiB in 64 KiB chunks takes longer than the 4 s
    timeout in total; it is an inactivity timeout, so nothing expires between files."""
    system, job_id = tuned
    started = time.time()
    with system.session() as sess:
        folder = sess.download_job_components(job_id)
    elapsed = time.time() - started
    for i in range(3):
        got = os.path.join(folder, f"LOG_part{i}")
        assert os.path.getsize(got) == 24 * 1024 * 1024
        assert open(got, "rb").read() == (system.job_store_dir(job_id) / f"LOG_part{i}").read_bytes()
    assert elapsed > SHORT_TIMEOUT, f"took only {elapsed:.1f}s: the test would not show anything"


CHECK = (
    "from nvflare.fuel.hci.server.download_settings import check_download_settings as c\n"
    "try:\n    print(c(1805.0))\nexcept Exception as e:\n    print(type(e).__name__ + ': ' + str(e))\n"
)
LIMITS = "from nvflare.fuel.hci.server.download_settings import download_limits as d\nprint(tuple(d()))\n"


def test_limit_defaults_and_environment():
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NVFLARE_ADMIN_DOWNLOAD")}
    out = subprocess.run([sys.executable, "-c", LIMITS], env=clean, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "(8, 64, 60.0, 16, 16)", out.stderr
    env = {
        "NVFLARE_ADMIN_DOWNLOAD_SESSION_LIMIT": "3",
        "NVFLARE_ADMIN_DOWNLOAD_SERVER_LIMIT": "5",
        "NVFLARE_ADMIN_DOWNLOAD_RESPONSE_TIMEOUT": "7.5",
        "NVFLARE_ADMIN_DOWNLOAD_USER_LIMIT": "4",
    }
    out = subprocess.run(
        [sys.executable, "-c", LIMITS], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip().splitlines()[-1] == "(3, 5, 7.5, 4, 1)", out.stderr


@pytest.mark.parametrize(
    "env, printed",
    [
        ({}, "(1805.0, 5242880, True)"),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_TIMEOUT": "7200", "NVFLARE_ADMIN_DOWNLOAD_CHUNK_SIZE": "1048576"},
            "(7200.0, 1048576, True)",
        ),
        ({"NVFLARE_ADMIN_DOWNLOAD_DIRECT": "false"}, "(1805.0, 5242880, False)"),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_DIRECT": "maybe"},
            "ConfigError: invalid admin_download_direct (server local/resources.json, --set admin_download_direct=..., "
            "or env NVFLARE_ADMIN_DOWNLOAD_DIRECT): 'maybe' must be true or false",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_TIMEOUT": "soon"},
            "ConfigError: invalid admin_download_timeout (server local/resources.json, --set admin_download_timeout=..., "
            "or env NVFLARE_ADMIN_DOWNLOAD_TIMEOUT): var admin_download_timeout's value 'soon' cannot be converted to "
            "float: could not convert string to float: 'soon'",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_TIMEOUT": "0"},
            "ConfigError: invalid admin_download_timeout (server local/resources.json, --set admin_download_timeout=..., "
            "or env NVFLARE_ADMIN_DOWNLOAD_TIMEOUT): 0.0 must be a number of seconds >= 1.0",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_CHUNK_SIZE": "12"},
            "ConfigError: invalid admin_download_chunk_size (server local/resources.json, --set "
            "admin_download_chunk_size=..., or env NVFLARE_ADMIN_DOWNLOAD_CHUNK_SIZE): 12 must be between 4096 and "
            "268435456 bytes",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_SESSION_LIMIT": "0"},
            "ConfigError: invalid admin_download_session_limit (server local/resources.json, --set "
            "admin_download_session_limit=..., or env NVFLARE_ADMIN_DOWNLOAD_SESSION_LIMIT): 0 must be a whole number "
            "from 1 to 100000",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_SERVER_LIMIT": "lots"},
            "ConfigError: invalid admin_download_server_limit (server local/resources.json, --set "
            "admin_download_server_limit=..., or env NVFLARE_ADMIN_DOWNLOAD_SERVER_LIMIT): var admin_download_server_limit's "
            "value 'lots' cannot be converted to int: invalid literal for int() with base 10: 'lots'",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_USER_LIMIT": "0"},
            "ConfigError: invalid admin_download_user_limit (server local/resources.json, --set "
            "admin_download_user_limit=..., or env NVFLARE_ADMIN_DOWNLOAD_USER_LIMIT): 0 must be a whole number "
            "from 1 to 100000",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_USER_LIMIT": "many"},
            "ConfigError: invalid admin_download_user_limit (server local/resources.json, --set "
            "admin_download_user_limit=..., or env NVFLARE_ADMIN_DOWNLOAD_USER_LIMIT): var admin_download_user_limit's "
            "value 'many' cannot be converted to int: invalid literal for int() with base 10: 'many'",
        ),
        (
            {"NVFLARE_ADMIN_SESSION_USER_LIMIT": "0"},
            "ConfigError: invalid admin_session_user_limit (server local/resources.json, --set "
            "admin_session_user_limit=..., or env NVFLARE_ADMIN_SESSION_USER_LIMIT): 0 must be a whole number "
            "from 1 to 100000",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_RESPONSE_TIMEOUT": "0.5"},
            "ConfigError: invalid admin_download_response_timeout (server local/resources.json, --set "
            "admin_download_response_timeout=..., or env NVFLARE_ADMIN_DOWNLOAD_RESPONSE_TIMEOUT): 0.5 must be a number "
            "of seconds >= 1.0",
        ),
    ],
)
def test_setting_values_and_messages(env, printed):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NVFLARE_ADMIN_DOWNLOAD")}
    out = subprocess.run(
        [sys.executable, "-c", CHECK], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip().splitlines()[-1] == printed, out.stderr


def test_bad_value_stops_the_server_at_startup(tuned):
    """Runs last in this module: restarts the tuned server with a bad chunk size."""
    system, _ = tuned
    system.stop()
    system.restart_server_expecting(
        "ConfigError: invalid admin_download_chunk_size (server local/resources.json, --set "
        "admin_download_chunk_size=..., or env NVFLARE_ADMIN_DOWNLOAD_CHUNK_SIZE): 12 must be between 4096 and "
        "268435456 bytes",
        env={"NVFLARE_ADMIN_DOWNLOAD_CHUNK_SIZE": "12"},
    )
