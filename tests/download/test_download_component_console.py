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
"""download_job_component in the real fl_admin console (driven through a pty).

Behaviour test for file-transfer-client-pull-component-handler-for-download-job-component.patch
(without the hook the console drops the command: "Undefined command") and
server-commands-register-the-job-component-command-module.patch.
"""

import os
import re

import psutil
import pytest
import torch
from admin_console import AdminConsole
from job_components import MEMBER, JobStore, sha256, write_numpy_job
from proc_watch import PeakRss

pytestmark = pytest.mark.system

BIG = 256 * 1024 * 1024
# The progress test needs a download that lasts several progress intervals (1 s): the
# range transfer moves 256 MiB in under a second on a 2-core host.
HUGE = 1024 * 1024 * 1024
UNKNOWN_JOB = "0b5b8c1e-94b4-4a4c-9f7e-3d7e8a1c2b6f"  # a valid job id no job has


@pytest.fixture(scope="module")
def console_job(flare_system, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console_job")
    job_id, meta = flare_system.submit_and_wait(write_numpy_job(tmp / "job"))
    torch.save({"w": torch.full((4,), 2.0)}, tmp / "m.pt")
    store = JobStore(flare_system.jobs_storage)
    store.put(job_id, "MODEL_global_model", str(tmp / "m.pt"), file_name="FL_global_model.pt", model_format="pytorch")
    with open(tmp / "big.bin", "wb") as f:
        for _ in range(BIG // (1 << 20)):
            f.write(os.urandom(1 << 20))
    store.put(job_id, "MODEL_big.zip", str(tmp / "big.bin"))
    return job_id


def console(flare_system, user="admin@nvidia.com"):
    return AdminConsole(flare_system.kit(user), env=flare_system.env)


def downloaded_path(output: str) -> str:
    m = re.search(
        r"^downloaded \S+ of job \S+ to (\S+) \(\d+ bytes in [\d.]+s, [\d.]+ MiB/s, sha256 verified\)$", output, re.M
    )
    assert m, output
    return m.group(1)


def test_download_prints_path_and_never_overwrites(flare_system, console_job):
    job_id = console_job
    stored = flare_system.job_store_dir(job_id) / "MODEL_global_model"
    folder = flare_system.transfer_dir() / "components" / job_id
    command = f"download_job_component {job_id} MODEL_global_model"
    with console(flare_system) as c:
        first = downloaded_path(c.run(command))
        (folder / "MODEL_global_model.pt.part").write_bytes(b"left by an interrupted download")
        again = c.run(command)
        torch.save({"w": torch.zeros(4)}, first)  # the user's own file under that name now
        second_out = c.run(command)
        relative = downloaded_path(c.run(f"download_job_component {job_id} MODEL_global_model models"))
    # the record's original name FL_global_model.pt gives the extension; __1 goes before it
    assert first == str(folder / "MODEL_global_model.pt")
    size = stored.stat().st_size
    part = folder / "MODEL_global_model.pt.part"
    assert again.split("\n")[:2] == [
        f"downloading MODEL_global_model: removed {part}: the file it was the beginning of is there",
        f"MODEL_global_model of job {job_id} is already downloaded: {first} holds the recorded {size} bytes "
        "(sha256 verified); nothing was transferred",
    ], again
    assert not part.exists()
    second = downloaded_path(second_out)
    assert second == str(folder / "MODEL_global_model__1.pt")
    assert f"\n{first} holds other bytes (another version of MODEL_global_model?): kept as it is\n" in second_out
    assert relative == str(flare_system.transfer_dir() / "models" / "MODEL_global_model.pt")
    for p in (second, relative):
        assert sha256(p) == sha256(stored)
    assert torch.equal(torch.load(second, weights_only=True)["w"], torch.full((4,), 2.0))
    assert torch.equal(torch.load(first, weights_only=True)["w"], torch.zeros(4))


def test_large_download_shows_progress_in_constant_memory(flare_system, console_job, tmp_path):
    """1 GiB named *.zip: progress lines, a plain file, and neither side holds the file in memory.

    Measured on a second download, after the first has warmed up both processes' buffer
    pools: a big bytes object is mapped and unmapped per use, so holding the file would
    show up again as growth of its size.
    """
    job_id = console_job
    block = os.urandom(1 << 20)
    with open(tmp_path / "huge.bin", "wb") as f:
        for _ in range(HUGE // len(block)):
            f.write(block)
    JobStore(flare_system.jobs_storage).put(job_id, "MODEL_huge.zip", str(tmp_path / "huge.bin"))
    os.unlink(tmp_path / "huge.bin")
    try:
        _download_huge_with_progress(flare_system, job_id, tmp_path)
    finally:  # the other tests list the job's components
        (flare_system.job_store_dir(job_id) / "MODEL_huge.zip").unlink()


def _download_huge_with_progress(flare_system, job_id, tmp_path):
    dest = tmp_path / "big"
    with console(flare_system) as c:
        c.run(f"download_job_component {job_id} MODEL_huge.zip {tmp_path / 'warm-up'}", timeout=300)
        watched = {"server": flare_system.server_parent(), "console": psutil.Process(c.proc.pid)}
        with PeakRss(**watched) as rss:
            out = c.run(f"download_job_component {job_id} MODEL_huge.zip {dest}", timeout=300)
    path = downloaded_path(out)
    assert path == str(dest / "MODEL_huge.zip") and os.path.isfile(path)
    assert sha256(path) == sha256(flare_system.job_store_dir(job_id) / "MODEL_huge.zip")
    assert os.listdir(dest) == ["MODEL_huge.zip"]
    progress = re.findall(
        r"^downloading MODEL_huge.zip: ([\d.]+) MiB of 1024.0 MiB \(\d+%\), ([\d.]+) MiB/s$", out, re.M
    )
    assert progress, out
    assert all(float(rate) > 0 for _, rate in progress)
    for k in watched:
        grew = rss.growth(k)
        assert grew < 64 * 1024 * 1024, f"{k} grew by {grew / 2**20:.0f} MiB while sending a 1 GiB file"


def test_console_errors(flare_system, console_job):
    job_id = console_job
    rule = (
        "a component is data, meta, workspace or <TYPE>_<name> with TYPE one of ERRORLOG, LOG, MODEL and <name> "
        "made of letters, digits, '.', '-' and '_'"
    )
    usage = "Usage: download_job_component job_id component [destination]"
    cases = {
        f"download_job_component {job_id}": usage,
        f"download_job_component {job_id} MODEL_global_model dest extra": usage,
        "download_job_component not-a-job MODEL_global_model": "Error: invalid job_id not-a-job",
        f"download_job_component {UNKNOWN_JOB} MODEL_global_model": f"Error: no such job: {UNKNOWN_JOB}",
        f"download_job_component {job_id} MODEL_a/../../b": f"invalid component name 'MODEL_a/../../b': {rule}, without '..'",
        f"download_job_component {job_id} MODEL_nothing": f"Error: component 'MODEL_nothing' not found in job {job_id}; the job has: MODEL_big.zip, MODEL_global_model",
        f"download_job_component {job_id} data": "Error: component 'data' is part of every job: download it with download_job",
        "list_job_component_info": "Error: Usage: list_job_component_info job_id",
    }
    before = sorted(os.listdir(flare_system.transfer_dir()))
    with console(flare_system) as c:
        for command, message in cases.items():
            out = c.run(command)
            assert out.split("\n")[0] == message, (command, out)
    with console(flare_system, MEMBER) as c:
        out = c.run(f"download_job_component {job_id} MODEL_global_model")
    assert out.split("\n")[0] == (
        f"Error: Authorization Error: user '{MEMBER}' is not authorized for 'download_job_component'"
    ), out
    assert sorted(os.listdir(flare_system.transfer_dir())) == before


def test_console_lists_components_with_sizes(flare_system, console_job):
    job_id = console_job
    with console(flare_system) as c:
        out = c.run(f"list_job_component_info {job_id}")
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("|")]
    stored = flare_system.job_store_dir(job_id)
    assert rows[0] == ["COMPONENT", "KIND", "FILE NAME", "FORMAT", "SIZE", "ROUND", "BEST BY", "SIGNED BY", "SHA256"]
    assert rows[1] == [
        "MODEL_big.zip",
        "MODEL",
        "big.zip",
        "-",
        str(BIG),
        "-",
        "-",
        "not signed",
        sha256(stored / "MODEL_big.zip"),
    ]
    model_size = str((stored / "MODEL_global_model").stat().st_size)
    assert rows[2] == [
        "MODEL_global_model",
        "MODEL",
        "FL_global_model.pt",
        "pytorch",
        model_size,
        "-",
        "-",
        "not signed",
        sha256(stored / "MODEL_global_model"),
    ]
