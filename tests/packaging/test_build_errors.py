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
"""What a user sees when the build cannot be trusted: exact messages, no wheel written."""

import os
import shutil
import subprocess
import sys

import pytest

PIN = "5f2b6739d332c32bfe82176e7b23757fff718e4b83563f829ee42c761bb15c2d"


@pytest.fixture
def repo_copy(repo, tmp_path):
    """The build inputs in a scratch folder, so a test can break them."""
    dest = tmp_path / "repo"
    dest.mkdir()
    for name in ("setup.py", "editable_finder.py", "upstream.json", "pyproject.toml"):
        shutil.copy2(repo / name, dest / name)
    shutil.copytree(repo / "patches", dest / "patches")
    shutil.copytree(repo / "nvflare", dest / "nvflare", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def run_build(repo_dir, env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NVFLARE_FORK_")}
    env.update(env_extra)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(repo_dir / "setup.py"), "wheel", "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, out


def _tampered(upstream_wheel, dest):
    data = bytearray(upstream_wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dest.write_bytes(bytes(data))
    return dest


def test_tampered_wheel_given_by_env_is_refused(repo_copy, upstream_wheel, tmp_path):
    bad = _tampered(upstream_wheel, tmp_path / "nvflare-2.9.0-py3-none-any.whl")
    proc, out = run_build(repo_copy, {"NVFLARE_FORK_UPSTREAM_WHEEL": str(bad)}, tmp_path)
    assert proc.returncode == 1
    actual = __import__("hashlib").sha256(bad.read_bytes()).hexdigest()
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: refusing the upstream wheel {bad} (from NVFLARE_FORK_UPSTREAM_WHEEL): its sha256 is {actual}, "
        f"but upstream.json pins nvflare-2.9.0-py3-none-any.whl at {PIN}. The file is not the released upstream "
        f"wheel (corrupt, tampered with, or a different version). Point NVFLARE_FORK_UPSTREAM_WHEEL at the "
        f"genuine nvflare-2.9.0-py3-none-any.whl from PyPI."
    )
    assert not out.exists() or not list(out.iterdir()), "no wheel, not even a partial one"


def test_tampered_cache_is_refused_with_the_fix(repo_copy, upstream_wheel, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    bad = _tampered(upstream_wheel, cache / "nvflare-2.9.0-py3-none-any.whl")
    proc, _ = run_build(repo_copy, {"NVFLARE_FORK_CACHE": str(cache)}, tmp_path)
    assert proc.returncode == 1
    assert f"error: refusing the upstream wheel {bad} (local cache)" in proc.stderr
    assert f"Delete it (rm '{bad}') so the build fetches a fresh copy" in proc.stderr


def test_missing_explicit_wheel(repo_copy, tmp_path):
    proc, _ = run_build(repo_copy, {"NVFLARE_FORK_UPSTREAM_WHEEL": str(tmp_path / "nope.whl")}, tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: NVFLARE_FORK_UPSTREAM_WHEEL={tmp_path / 'nope.whl'} does not name a file"


def test_failing_hunk_names_patch_and_file(repo_copy, upstream_wheel, tmp_path, fork_build):
    name = fork_build.read_series()[0]
    patch = repo_copy / "patches" / name
    text = patch.read_text()
    assert '     LOG = "LOG"\n' in text
    patch.write_text(text.replace('     LOG = "LOG"\n', '     LOG = "LOGS"\n', 1))
    proc, out = run_build(repo_copy, {"NVFLARE_FORK_UPSTREAM_WHEEL": str(upstream_wheel)}, tmp_path)
    assert proc.returncode == 1
    assert f"error: patch {name} does not apply to upstream (files: nvflare/apis/storage.py):" in proc.stderr
    assert "patch failed: nvflare/apis/storage.py" in proc.stderr
    assert not out.exists() or not list(out.iterdir())


def test_series_naming_a_missing_patch(repo_copy, upstream_wheel, tmp_path):
    with open(repo_copy / "patches" / "series", "a") as f:
        f.write("no-such.patch\n")
    proc, _ = run_build(repo_copy, {"NVFLARE_FORK_UPSTREAM_WHEEL": str(upstream_wheel)}, tmp_path)
    assert proc.returncode == 1
    assert "error: patches/series names no-such.patch, but patches/no-such.patch does not exist" in proc.stderr


def test_overlay_may_not_shadow_an_upstream_file(repo_copy, upstream_wheel, tmp_path):
    (repo_copy / "nvflare" / "cli.py").write_text("# shadow\n")
    proc, _ = run_build(repo_copy, {"NVFLARE_FORK_UPSTREAM_WHEEL": str(upstream_wheel)}, tmp_path)
    assert proc.returncode == 1
    assert "error: overlay files shadow upstream files (rename them): ['nvflare/cli.py']" in proc.stderr
