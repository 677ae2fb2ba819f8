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
"""tools/containers.sh where no engine can run: one line saying why, exit 0, nothing done.

The lane itself (tests/containers) runs only through the script; this checks the
script's way out on a machine without podman and without apt (a PATH holding only the
few tools the check needs).
"""

import os
import shutil
import subprocess


def test_lane_skips_with_one_line_without_an_engine(repo, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "id"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    state = tmp_path / "state"
    proc = subprocess.run(
        [shutil.which("bash"), str(repo / "tools" / "containers.sh")],
        env={"PATH": str(bin_dir), "NVFLARE_FORK_ENGINE_STATE": str(state)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "containers lane skipped: no container engine here (podman runc debootstrap docker.io missing; "
        "installing them needs root and apt-get)"
    ]
    assert proc.stderr == ""
    assert not state.exists()


def test_ci_runs_the_lane_after_the_system_lane(repo):
    lines = [line.split("#")[0].strip() for line in (repo / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line.startswith(("bash ", "exec "))]
    assert commands[-2:] == ["bash tools/test.sh -m system", "exec bash tools/containers.sh"]
