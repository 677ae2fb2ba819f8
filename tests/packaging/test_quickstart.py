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
"""The README's demo command, run as a newcomer runs it: fresh venv, real system, real console."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import torch

pytestmark = [pytest.mark.system, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo_venv(tmp_path_factory):
    """A venv that does not exist yet: the quickstart must create and fill it."""
    return tmp_path_factory.mktemp("demo") / "venv"


def _env(venv):
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["NVFLARE_QUICKSTART_VENV"] = str(venv)
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin:" + env.get("PATH", "")
    return env


def _leftovers(workdir: Path):
    marker = str(workdir)
    found = []
    for p in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []) or (p.info["cwd"] or "").startswith(marker):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def test_quickstart_runs_the_whole_story(repo, demo_venv, tmp_path):
    workdir = tmp_path / "qs"
    proc = subprocess.run(
        ["bash", str(repo / "tools" / "quickstart.sh"), "--dir", str(workdir)],
        env=_env(demo_venv),
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]
    for n in range(1, 9):
        assert f"\n[{n}/8] " in out
    assert "NVFlare version is 2.9.0+model.1" in out
    assert "status FINISHED:COMPLETED" in out
    assert re.search(
        r"\| MODEL_global_model +\| MODEL +\| FL_global_model\.pt +\| \S+ +\| 53159437 +\| \d+ +\| - +"
        r"\| server \(example_project\), weaker: TLS key +\| [0-9a-f]{64} \|",  # POC signs with its TLS key
        out,
    )
    model = re.search(r"downloaded MODEL_global_model of job \S+ to (\S+) \(53159437 bytes in .*sha256 verified\)", out)
    assert model, out
    path = Path(model.group(1))
    assert path.is_relative_to(workdir) and path.name == "MODEL_global_model.pt"  # the original extension
    assert "loaded:  QuickstartNet, 8 tensors, 13,288,964 parameters" in out
    assert torch.load(path, weights_only=True)["model"]["layers.0.weight"].shape == (2560, 64)
    assert re.search(r"download_job_component +[0-9.]+ +53,159,437\n", out)
    assert re.search(r"download_job +[0-9.]+ +1\d\d,\d{3},\d{3}\n", out), "the whole job is about twice the model"
    assert "stopped; no FLARE processes left" in out
    assert _leftovers(workdir) == []


def test_ctrl_c_stops_everything(repo, demo_venv, tmp_path):
    """Ctrl-C while the job runs: the system is stopped and no process is left behind."""
    workdir = tmp_path / "qs-int"
    log = tmp_path / "quickstart.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            ["bash", str(repo / "tools" / "quickstart.sh"), "--dir", str(workdir)],
            env=_env(demo_venv),
            cwd=repo,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.time() + 900
        while "[4/8] waiting for the job to finish" not in log.read_text():
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        time.sleep(3)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        assert proc.wait(timeout=300) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert "interrupted: stopping the FLARE system" in text
    assert "stopped; no FLARE processes left" in text
    assert _leftovers(workdir) == []
