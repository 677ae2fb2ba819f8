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
"""In the simulator (no job store) a job that configures the publisher gets one clear log line,
no error, and finishes normally."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from model_jobs import PUBLISHER, add_server_component, np_fedavg_job

SKIPPED = "Model publishing skipped: the simulator has no job store (models stay in the workspace)"


@pytest.mark.system  # the simulator runs a server and clients
def test_simulator_logs_one_line_and_no_error(tmp_path):
    folder = np_fedavg_job(tmp_path, name="np_sim", num_rounds=1)
    add_server_component(folder, {"id": "model_publisher", "path": PUBLISHER, "args": {}})
    workspace = tmp_path / "sim_ws"
    env = dict(os.environ, HOME=str(tmp_path))
    env.pop("PYTHONPATH", None)
    nvflare = str(Path(sys.executable).parent / "nvflare")
    proc = subprocess.run(
        [nvflare, "simulator", "-w", str(workspace), "-n", "2", "-t", "2", str(folder)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    logs = proc.stdout + proc.stderr
    logs += "".join(p.read_text(errors="replace") for p in workspace.rglob("log.txt"))
    assert proc.returncode == 0, logs[-3000:]
    publisher_lines = [line for line in logs.splitlines() if " - ModelPublisher - " in line]
    assert publisher_lines and all(SKIPPED in line for line in publisher_lines), publisher_lines
    assert not [line for line in publisher_lines if " ERROR " in line]
