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
"""The front doors: pip wheel ., python -m build (sdist then wheel from it), offline and fetching."""

import os
import shutil
import subprocess
import sys
import tarfile

import pytest

pytestmark = pytest.mark.slow


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NVFLARE_FORK_")}
    env.update(extra)
    return env


@pytest.fixture
def src(repo, tmp_path):
    """A clean source tree (what a clone holds), so pip and build see no local build leftovers."""
    dest = tmp_path / "src"
    dest.mkdir()
    for name in (
        "setup.py",
        "editable_finder.py",
        "upstream.json",
        "pyproject.toml",
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
    ):
        if (repo / name).exists():
            shutil.copy2(repo / name, dest / name)
    shutil.copytree(repo / "patches", dest / "patches")
    shutil.copytree(repo / "nvflare", dest / "nvflare", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_pip_wheel_offline_with_the_wheel_given(src, upstream_wheel, fork_wheel, fork_build, tmp_path):
    out = tmp_path / "out"
    env = _env(NVFLARE_FORK_UPSTREAM_WHEEL=str(upstream_wheel), PIP_NO_INDEX="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "-w", str(out), str(src)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    (built,) = out.glob("nvflare-*.whl")
    assert built.name == "nvflare-2.9.0+model.1-py3-none-any.whl"
    assert fork_build.sha256_of(built) == fork_build.sha256_of(fork_wheel)


def test_pip_fetches_and_caches_the_upstream_wheel_inside_isolated_build(src, fork_wheel, fork_build, tmp_path):
    """No wheel given, empty cache: the backend's own pip subprocess fetches it from the index."""
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(src)],
        env=_env(NVFLARE_FORK_CACHE=str(cache)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    cached = cache / "nvflare-2.9.0-py3-none-any.whl"
    assert fork_build.sha256_of(cached) == "5f2b6739d332c32bfe82176e7b23757fff718e4b83563f829ee42c761bb15c2d"
    (built,) = out.glob("nvflare-*.whl")
    assert fork_build.sha256_of(built) == fork_build.sha256_of(fork_wheel)


def test_python_m_build_sdist_then_wheel_from_it(src, upstream_wheel, fork_wheel, fork_build, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)],
        env=_env(NVFLARE_FORK_UPSTREAM_WHEEL=str(upstream_wheel)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sdist,) = out.glob("*.tar.gz")
    assert sdist.name == "nvflare-2.9.0+model.1.tar.gz"
    with tarfile.open(sdist) as t:
        names = set(t.getnames())
    base = "nvflare-2.9.0+model.1"
    for needed in ("PKG-INFO", "setup.py", "pyproject.toml", "upstream.json", "patches/series"):
        assert f"{base}/{needed}" in names
    assert {f"{base}/{p}" for p in fork_build.overlay_files()} <= names
    (built,) = out.glob("*.whl")
    assert fork_build.sha256_of(built) == fork_build.sha256_of(fork_wheel), "wheel from sdist == wheel from tree"
