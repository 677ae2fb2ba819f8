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
"""The installed package is the fork (not upstream, not the repo folder) and works as a drop-in."""

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nvflare

NVFLARE = str(Path(sys.executable).parent / "nvflare")


def test_imported_from_site_packages_not_the_repo(repo):
    location = Path(nvflare.__file__).resolve()
    assert location.is_relative_to(Path(sysconfig.get_paths()["purelib"]).resolve())
    assert not location.is_relative_to(repo / "nvflare"), "the overlay folder must not shadow the install"


def test_versions_agree():
    assert nvflare.__version__ == "2.9.0+model.1"
    assert importlib.metadata.version("nvflare") == "2.9.0+model.1"
    proc = subprocess.run([NVFLARE, "-V"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.strip().splitlines()[-1] == "NVFlare version is 2.9.0+model.1"


def test_installed_files_are_the_wheels(fork_wheel):
    """Install identity: every installed nvflare file is byte-equal to the fork wheel's copy."""
    site = Path(sysconfig.get_paths()["purelib"])
    with zipfile.ZipFile(fork_wheel) as z:
        names = [n for n in z.namelist() if n.startswith(("nvflare/", "nvflight/"))]
        for name in names:
            assert (site / name).read_bytes() == z.read(name), name
    dist = importlib.metadata.distribution("nvflare")
    assert "MODIFICATIONS" in {Path(str(f)).name for f in dist.files}


def test_poc_prepare_still_works(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path / "home"), NVFLARE_POC_WORKSPACE=str(tmp_path / "poc"))
    proc = subprocess.run(
        [NVFLARE, "poc", "prepare", "-n", "2"], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    prod = tmp_path / "poc" / "example_project" / "prod_00"
    for participant in ("server", "site-1", "site-2", "admin@nvidia.com"):
        assert (prod / participant / "startup").is_dir(), participant


def test_model_data_type_exists():
    from nvflare.apis.storage import VALID_COMPONENT_PREFIXES, DataTypes

    assert DataTypes.MODEL.value == "MODEL"
    assert "MODEL" in VALID_COMPONENT_PREFIXES
