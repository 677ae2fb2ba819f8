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
"""Real upstream NVFlare 2.9.0 next to the fork: its own venv, and kits it provisioned.

The venv is built once per machine from the pinned upstream wheel (the one the fork is
built from) and kept next to it in the fork's cache, so upgrade tests start from what an
operator of an existing deployment really has: kits provisioned by upstream, not by the
fork with its additions stripped.
"""

import os
import shutil
import subprocess
import venv
from pathlib import Path

CACHE = Path(os.environ.get("NVFLARE_FORK_CACHE", Path.home() / ".cache" / "nvflare-fork"))


def upstream_nvflare(upstream_wheel: Path) -> Path:
    """bin/nvflare of a venv with upstream nvflare 2.9.0 (built on first use, then reused)."""
    target = CACHE / f"venv-upstream-{Path(upstream_wheel).stem}"
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        venv.create(target, with_pip=True)
        subprocess.run(
            [
                str(target / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                str(upstream_wheel),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
        (target / ".complete").write_text("ok\n")
    return target / "bin" / "nvflare"


def upstream_kits(nvflare: Path, root: Path, n_clients: int = 1) -> Path:
    """Kits provisioned by upstream (``nvflare provision`` of the POC's project.yml): the prod folder.

    Not ``poc prepare``'s own kits: POC mode also writes a local/resources.json, which a
    provisioned kit does not have.
    """
    root = Path(root)
    env = dict(os.environ, HOME=str(root / "home"), NVFLARE_POC_WORKSPACE=str(root / "poc"))
    env.pop("PYTHONPATH", None)
    (root / "home").mkdir(parents=True, exist_ok=True)
    for args in (
        ["poc", "prepare", "-n", str(n_clients), "--force"],
        ["provision", "-p", str(root / "poc" / "project.yml"), "-w", str(root / "provisioned")],
    ):
        subprocess.run(
            [str(nvflare), *args], check=True, capture_output=True, text=True, timeout=300, env=env, cwd=root
        )
    (prod,) = (root / "provisioned").glob("*/prod_00")
    return prod
