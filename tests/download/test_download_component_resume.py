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
"""Interrupted downloads resume; a destination too small is refused before anything is written.

Against the shared real system, with the real fl_admin console (a pty): a 500 MB torch
model is downloaded through a TCP forwarder that paces it like a real link (so the test can
interrupt it half way), the console is killed with SIGKILL, and the same command in a new
console resumes. What the second run transferred is measured on the server (its log line
for the transfer: bytes served) and must be about half; the file must have the recorded
sha256 and load with torch. A network cut (every connection reset) ends the download with
the partial file kept, and the next run resumes from it. A tmpfs smaller than the model
gets the exact space message and stays empty.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
import torch
from admin_console import AdminConsole
from cutting_proxy import CuttingProxy
from flare_system import PROJECT_ADMIN
from job_components import JobStore, sha256, write_numpy_job

pytestmark = pytest.mark.system

MIB = 1024 * 1024
ELEMENTS = 125_000_000  # float32: a 500 MB model
BLOCK = 64 * MIB
ENDED = re.compile(r"range transfer (\w+) ended \((.*?)\) after (\d+) bytes served \((\d+) direct\)")
RATE = 120 * MIB  # the paced link: a 500 MB download takes about 4 s


@pytest.fixture(scope="module")
def big_model(flare_system, tmp_path_factory):
    """(job id, the component's record, a slice of its weights): MODEL_big, a 500 MB torch checkpoint."""
    tmp = tmp_path_factory.mktemp("resume")
    job_id, meta = flare_system.submit_and_wait(write_numpy_job(tmp / "job"))
    assert meta["status"] == "FINISHED:COMPLETED", meta
    weights = torch.empty(ELEMENTS).uniform_()
    torch.save({"w": weights}, tmp / "big.pt")
    head = weights[:1000].clone()
    del weights
    record = JobStore(flare_system.jobs_storage).put(
        job_id, "MODEL_big", str(tmp / "big.pt"), file_name="big.pt", move=True
    )
    return job_id, record, head


@pytest.fixture
def paced_kit(flare_system, tmp_path):
    """A copy of the project admin's kit whose connections go through a pacing CuttingProxy."""
    proxy = CuttingProxy(flare_system.port, cut_after=10**15, cut_from=1, rate=RATE)
    kit = tmp_path / "paced_kit"
    shutil.copytree(flare_system.kit(PROJECT_ADMIN), kit)
    config_file = kit / "startup" / "fed_admin.json"
    config = json.loads(config_file.read_text())
    config["admin"].update({"host": "127.0.0.1", "port": proxy.port, "file_download_progress_timeout": 3.0})
    config_file.write_text(json.dumps(config, indent=2))
    yield kit, proxy
    proxy.close()


def _log(flare_system) -> str:
    return (flare_system.server_dir / "log.txt").read_text(errors="replace")


def served_since(flare_system, offset: int, status: str = "ok") -> list:
    """[(bytes served, of which direct)] of the transfers that ended with ``status`` after log offset ``offset``."""
    deadline = time.time() + 10
    while True:
        found = [
            (int(m.group(3)), int(m.group(4)))
            for m in ENDED.finditer(_log(flare_system)[offset:])
            if m.group(2) == status
        ]
        if found or time.time() > deadline:
            return found
        time.sleep(0.2)


def wait_for_size(path, at_least: int, timeout: float = 120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and os.path.getsize(path) >= at_least:
            return os.path.getsize(path)
        time.sleep(0.01)
    raise AssertionError(f"{path} did not reach {at_least} bytes in {timeout} s")


def downloaded(out: str) -> str:
    m = re.search(
        r"^downloaded MODEL_big of job \S+ to (\S+) \(\d+ bytes in [\d.]+s, [\d.]+ MiB/s, sha256 verified\)$", out, re.M
    )
    assert m, out
    return m.group(1)


def check_model(path, record, head):
    assert sha256(path) == record["sha256"]
    loaded = torch.load(path, mmap=True, weights_only=True)["w"]
    assert loaded.shape == (ELEMENTS,) and torch.equal(loaded[:1000], head)


def resume_and_check(flare_system, job_id, record, head, dest, part_size: int, via: str = "console") -> int:
    """Run the download again (a new console, or the FLARE API); the bytes it transferred (measured by the server)."""
    size = record["size"]
    kept = part_size // BLOCK * BLOCK  # whole verified blocks
    offset = len(_log(flare_system))
    if via == "console":
        with AdminConsole(flare_system.kit(PROJECT_ADMIN), env=flare_system.env) as c:
            out = c.run(f"download_job_component {job_id} MODEL_big {dest}", timeout=180)
        part = dest / "MODEL_big.pt.part"
        held = f"held {part_size} bytes, the first {kept} verified" if kept < part_size else "verified"
        assert (
            f"downloading MODEL_big: resuming from byte {kept} of {size}: {part} {held} against the recorded "
            "block hashes\n" in out
        ), out
        assert (
            f"\nresumed: {kept} bytes were already in the partial file (verified), {size - kept} transferred\n" in out
        )
        path = downloaded(out)
    else:
        with flare_system.session() as sess:
            path = sess.download_job_component(job_id, "MODEL_big", str(dest))
    assert path == str(dest / "MODEL_big.pt") and sorted(os.listdir(dest)) == ["MODEL_big.pt"]
    check_model(path, record, head)
    served = served_since(flare_system, offset)
    assert served == [(size - kept, size - kept)], served  # the rest only, in one direct response
    return size - kept


def start_and_interrupt(flare_system, kit, job_id, dest, at_least: int, interrupt):
    """Start the download in a console on ``kit``; once its partial file holds ``at_least`` bytes, ``interrupt(console)``."""
    console = AdminConsole(kit, env=flare_system.env)
    try:
        console.login()
        console.send(f"download_job_component {job_id} MODEL_big {dest}")
        wait_for_size(dest / "MODEL_big.pt.part", at_least)
        return interrupt(console)
    finally:
        if console.proc.poll() is None:
            console.proc.kill()  # no orderly logout: it was killed, or its connection is gone
            console.proc.wait()
        console.close()


def test_a_killed_console_resumes_from_half_way(flare_system, big_model, paced_kit, tmp_path):
    job_id, record, head = big_model
    kit, proxy = paced_kit
    size = record["size"]
    dest = tmp_path / "models"
    start_and_interrupt(flare_system, kit, job_id, dest, size // 2, lambda c: os.kill(c.proc.pid, signal.SIGKILL))
    part_size = os.path.getsize(dest / "MODEL_big.pt.part")
    assert size // 2 <= part_size < size and sorted(os.listdir(dest)) == ["MODEL_big.pt.part"]
    transferred = resume_and_check(flare_system, job_id, record, head, dest, part_size)
    print(f"resume after SIGKILL: partial {part_size} bytes, second run transferred {transferred} of {size}")
    assert 0.35 * size <= transferred <= 0.65 * size  # about half


def test_a_network_cut_keeps_the_partial_file_for_the_next_run(flare_system, big_model, paced_kit, tmp_path):
    job_id, record, head = big_model
    kit, proxy = paced_kit
    size = record["size"]
    dest = tmp_path / "models"
    part = dest / "MODEL_big.pt.part"

    def cut(console):
        proxy.cut_all()
        return console.expect(r"run the same command again to resume\n", timeout=120)

    out = start_and_interrupt(flare_system, kit, job_id, dest, size // 3, cut)
    part_size = os.path.getsize(part)
    line = next(x for x in out.splitlines() if x.startswith("download of MODEL_big failed"))
    assert re.fullmatch(
        rf"download of MODEL_big failed: .+; the {part_size} bytes received so far are kept in {part}: run the same "
        "command again to resume",
        line,
    ), line
    resume_and_check(flare_system, job_id, record, head, dest, part_size, via="api")


def _small_file_system(mount_point) -> str:
    """Mount a 32 MiB file system at ``mount_point``; '' if done, else why it could not be."""
    tried = []
    for command in (["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount_point)],):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode == 0:
            return ""
        tried.append(f"{' '.join(command[:3])}: {done.stderr.strip() or done.returncode}")
    image = mount_point.parent / "small.img"
    try:
        with open(image, "wb") as f:
            f.truncate(32 * MIB)
        for command in (["mkfs.ext4", "-q", "-F", str(image)], ["mount", "-o", "loop", str(image), str(mount_point)]):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                tried.append(f"{command[0]}: {done.stderr.strip() or done.returncode}")
                return "; ".join(tried)
        return ""
    except OSError as e:
        tried.append(f"loop image: {e}")
        return "; ".join(tried)


@pytest.fixture
def small_fs(tmp_path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    why = _small_file_system(mount_point)
    if why:
        pytest.skip(f"cannot mount a small file system here ({why}); the space check's unit test still runs")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], capture_output=True)


def test_a_destination_too_small_is_refused_and_nothing_is_written(flare_system, big_model, small_fs):
    job_id, record, _ = big_model
    size = record["size"]
    free = shutil.disk_usage(small_fs).free
    dest = small_fs / "models"
    offset = len(_log(flare_system))
    with AdminConsole(flare_system.kit(PROJECT_ADMIN), env=flare_system.env) as c:
        out = c.run(f"download_job_component {job_id} MODEL_big {dest}")
    assert out.split("\n")[0] == (
        f"download of MODEL_big refused: not enough free space in {dest} for MODEL_big: it needs {size + MIB} bytes "
        f"({size} bytes recorded, plus {MIB} for its proof file and file-system overhead), and {free} bytes are "
        "free; nothing was written"
    ), out
    assert os.listdir(small_fs) == [] or os.listdir(small_fs) == ["lost+found"]
    assert served_since(flare_system, offset, status="failed") == [(0, 0)]  # the server sent nothing
