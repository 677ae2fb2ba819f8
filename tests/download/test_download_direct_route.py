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
"""The direct route: download_job_component as one HTTPS response on the server's listener.

Behaviour test of aio-http-driver-serve-component-downloads-as-one-https-response.patch:
without the patch the listener has no route, the server offers none, and every download
goes by ranges (the "direct" byte counts below stay 0). Upstream's download_job and
download_job_components use the route too, through
binary-transfer-offer-folder-downloads-by-the-direct-route.patch (the server offers
their files) and file-transfer-client-pull-folder-files-by-the-direct-route-when-offered.patch
(the admin client takes the offer): without either, no transfer of theirs is logged.

All against the shared real system (mTLS, the default http scheme); a broken download
connection is a real one, reset by a TCP forwarder between the admin kit and the server.
"""

import hashlib
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
from cutting_proxy import CuttingProxy
from flare_system import PROJECT_ADMIN
from job_components import LEAD, finished_job_with_component, sha256

from nvflare.fuel.f3.drivers.direct_download_route import ROUTE
from nvflare.fuel.hci.client.component_direct_reader import DirectUnavailable, direct_endpoint, read_direct
from nvflare.fuel.hci.client.component_range_reader import RangeSource
from nvflare.fuel.hci.job_component_defs import DIRECT_ROUTE, RANGE_TRANSFER, TRANSFER_ID

MIB = 1024 * 1024
SIZE = 32 * MIB + 321
ENDED = re.compile(r"range transfer (\w+) ended \((.*?)\) after (\d+) bytes served \((\d+) direct\)")
UNKNOWN = "no such transfer: it ended, expired, or belongs to another admin"

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def direct_job(flare_system, tmp_path_factory):
    data = os.urandom(SIZE)
    return finished_job_with_component(flare_system, tmp_path_factory.mktemp("job"), "MODEL_direct", data), data


def ended(flare_system, transfer_id: str) -> tuple:
    """(status, bytes served, of which direct) from the server log, once the transfer ended."""
    deadline = time.time() + 10
    while time.time() < deadline:
        for m in ENDED.finditer((flare_system.server_dir / "log.txt").read_text()):
            if m.group(1) == transfer_id:
                return m.group(2), int(m.group(3)), int(m.group(4))
        time.sleep(0.2)
    raise AssertionError(f"no end line for transfer {transfer_id}")


def last_transfer_id(flare_system) -> str:
    return ENDED.findall((flare_system.server_dir / "log.txt").read_text())[-1][0]


def end_lines(flare_system) -> list:
    return ENDED.findall((flare_system.server_dir / "log.txt").read_text())


def open_transfer(sess, job_id) -> dict:
    meta = sess.api.server_execute(f"download_job_component {job_id} MODEL_direct")["meta"]
    assert meta["status"] == "ok", meta
    return meta[RANGE_TRANSFER]


def test_download_goes_by_one_direct_response(flare_system, direct_job, tmp_path):
    job_id, data = direct_job
    with flare_system.session() as sess:
        path = sess.download_job_component(job_id, "MODEL_direct", str(tmp_path))
    assert sha256(path) == hashlib.sha256(data).hexdigest()
    status, served, direct = ended(flare_system, last_transfer_id(flare_system))
    assert (status, served, direct) == ("ok", SIZE, SIZE)


def test_route_serves_only_the_admin_who_opened_the_transfer(flare_system, direct_job):
    job_id, data = direct_job
    with flare_system.session() as sess:
        transfer = open_transfer(sess, job_id)
        assert transfer[DIRECT_ROUTE] == ROUTE
        endpoint = direct_endpoint(sess.api.cell)
        with pytest.raises(DirectUnavailable) as e:
            read_direct(endpoint, ROUTE, "0" * 32, SIZE, lambda b: None, timeout=10)
        assert str(e.value) == f"the server refused it (HTTP 404: {UNKNOWN})"
        with flare_system.session(LEAD) as other:  # another admin's certificate, the right id
            with pytest.raises(DirectUnavailable) as e:
                read_direct(direct_endpoint(other.api.cell), ROUTE, transfer[TRANSFER_ID], SIZE, lambda b: None, 10)
        assert str(e.value) == (
            f"the server refused it (HTTP 403: this transfer belongs to {PROJECT_ADMIN}, "
            f"not to the certificate's {LEAD})"
        )
        got = bytearray()
        read_direct(endpoint, ROUTE, transfer[TRANSFER_ID], SIZE, got.extend, timeout=10)
        assert got == data
        RangeSource(sess.api.cell, transfer, timeout=10).end("ok")
        with pytest.raises(DirectUnavailable) as e:  # ended: released at once
            read_direct(endpoint, ROUTE, transfer[TRANSFER_ID], SIZE, lambda b: None, timeout=10)
        assert str(e.value) == f"the server refused it (HTTP 404: {UNKNOWN})"
    assert ended(flare_system, transfer[TRANSFER_ID]) == ("ok", SIZE, SIZE)


def test_a_resumed_download_asks_for_the_rest_only(flare_system, direct_job):
    """X-NVFlare-Fork-Offset: the response carries bytes start..size, and only those are served."""
    job_id, data = direct_job
    start = 20 * MIB + 3
    with flare_system.session() as sess:
        transfer = open_transfer(sess, job_id)
        endpoint = direct_endpoint(sess.api.cell)
        with pytest.raises(DirectUnavailable) as e:  # the reader checks the length it asked for
            read_direct(endpoint, ROUTE, transfer[TRANSFER_ID], SIZE + 1, lambda b: None, timeout=10, start=SIZE)
        assert str(e.value) == (
            f"the server refused it (HTTP 416: X-NVFlare-Fork-Offset '{SIZE}' is not a byte offset below {SIZE})"
        )
        got = bytearray()
        read_direct(endpoint, ROUTE, transfer[TRANSFER_ID], SIZE, got.extend, timeout=10, start=start)
        assert got == data[start:]
        RangeSource(sess.api.cell, transfer, timeout=10).end("ok")
    assert ended(flare_system, transfer[TRANSFER_ID]) == ("ok", SIZE - start, SIZE - start)


@pytest.fixture
def cut_kit(flare_system, tmp_path):
    """A copy of the project admin's kit that connects through a CuttingProxy."""
    proxy = CuttingProxy(flare_system.port, cut_after=5 * MIB)
    kit = tmp_path / "kit"
    shutil.copytree(flare_system.kit(PROJECT_ADMIN), kit)
    config_file = kit / "startup" / "fed_admin.json"
    config = json.loads(config_file.read_text())
    config["admin"].update({"host": "127.0.0.1", "port": proxy.port})
    config_file.write_text(json.dumps(config, indent=2))
    yield kit, proxy
    proxy.close()


def test_a_broken_direct_response_is_finished_by_ranges(flare_system, direct_job, cut_kit, tmp_path):
    """The rest comes by ranges, 4 in flight, from where the response broke: nothing twice."""
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    job_id, data = direct_job
    kit, proxy = cut_kit
    seen, stop = set(), threading.Event()

    def watch():
        while not stop.is_set():
            seen.update(t.name for t in threading.enumerate() if t.name.startswith("component_range"))
            time.sleep(0.001)

    sess = new_secure_session(PROJECT_ADMIN, str(kit), timeout=30)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        path = sess.download_job_component(job_id, "MODEL_direct", str(tmp_path / "dest"))
    finally:
        stop.set()
        watcher.join()
        sess.close()
    assert sha256(path) == hashlib.sha256(data).hexdigest()
    assert [n for n, _ in proxy.cut] == [2], proxy.cut  # the session's own connection was never cut
    assert len(seen) == 4, seen
    assert sorted(os.listdir(tmp_path / "dest")) == ["MODEL_direct"]
    status, served, direct = ended(flare_system, last_transfer_id(flare_system))
    assert status == "ok"
    assert 0 < direct < SIZE, direct
    # ranges re-read at most what the broken response had read but not delivered
    assert SIZE <= served <= SIZE + direct + MIB, (served, direct)


def wait_for_no_new_transactions(flare_system, before: set, timeout: float = 15):
    """The files of the download's transaction are gone (upstream leaves the empty <tx_id>/)."""

    def kept():
        return [
            p
            for tx in flare_system.transfer_transactions() - before
            for p in (flare_system.server_transfer_dir / tx).iterdir()
        ]

    deadline = time.time() + timeout
    while kept() and time.time() < deadline:
        time.sleep(0.2)
    assert not kept(), "the server kept the download's files"


def test_download_job_components_goes_direct(flare_system, direct_job, tmp_path):
    """Every file direct; the DownloadService transaction is released as soon as they are done."""
    job_id, _ = direct_job
    before_tx, before_lines = flare_system.transfer_transactions(), len(end_lines(flare_system))
    with flare_system.session() as sess:
        folder = Path(sess.download_job_components(job_id))
        wait_for_no_new_transactions(flare_system, before_tx)  # before the logout, which would also release it
    store = flare_system.job_store_dir(job_id)
    files = sorted(p.name for p in folder.iterdir())
    assert "MODEL_direct" in files and "MODEL_global_model" in files, files
    for name in files:
        assert sha256(folder / name) == sha256(store / name), name
    deadline = time.time() + 10
    while len(end_lines(flare_system)) < before_lines + len(files) and time.time() < deadline:
        time.sleep(0.2)
    new = end_lines(flare_system)[before_lines:]
    sizes = sorted(os.path.getsize(folder / n) for n in files)
    assert sorted(int(direct) for _, _, _, direct in new) == sizes, new
    assert all(status == "ok" and served == direct for _, status, served, direct in new), new
    assert len(new) == len(files)


def test_download_job_goes_direct(flare_system, direct_job, tmp_path):
    job_id, _ = direct_job
    before_tx, before_lines = flare_system.transfer_transactions(), len(end_lines(flare_system))
    with flare_system.session() as sess:
        folder = Path(sess.download_job_result(job_id))
        wait_for_no_new_transactions(flare_system, before_tx)
    assert (folder / "workspace").is_dir() or any(folder.rglob("*.json")), list(folder.rglob("*"))[:20]
    new = end_lines(flare_system)[before_lines:]
    workspace_zip = flare_system.job_store_dir(job_id) / "workspace"
    # the job's files (job definition, meta, workspace archive) all went direct
    assert all(status == "ok" and served == direct for _, status, served, direct in new), new
    assert workspace_zip.stat().st_size in [int(direct) for _, _, _, direct in new], new


def test_a_folder_file_whose_direct_response_breaks_comes_from_download_service(
    flare_system, direct_job, cut_kit, tmp_path
):
    """MODEL_direct (32 MiB) is cut after 5 MiB and pulled the upstream way; the smaller files
    go direct; logging out releases the DownloadService transaction."""
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    job_id, _ = direct_job
    kit, proxy = cut_kit
    before_tx, before_lines = flare_system.transfer_transactions(), len(end_lines(flare_system))
    sess = new_secure_session(PROJECT_ADMIN, str(kit), timeout=30)
    try:
        folder = Path(sess.download_job_components(job_id))
    finally:
        sess.close()
    store = flare_system.job_store_dir(job_id)
    for name in os.listdir(folder):
        assert sha256(folder / name) == sha256(store / name), name
    assert proxy.cut, "the proxy never cut a direct response: the test shows nothing"
    wait_for_no_new_transactions(flare_system, before_tx)
    statuses = [status for _, status, _, _ in end_lines(flare_system)[before_lines:]]
    failed = [s for s in statuses if s != "ok"]
    # how a reset surfaces through TLS (EOF or an error) is the platform's choice
    assert len(failed) == 1 and re.fullmatch(
        rf"failed: the response (ended after \d+ of {SIZE} bytes|broke off \(\w+: .+\))", failed[0]
    ), statuses
