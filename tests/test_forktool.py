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
"""The patch workflow: the repo's patches are canonical and linted; drift and gaps are caught."""

import shutil
import subprocess
import sys

import pytest


@pytest.fixture
def repo_copy(repo, tmp_path):
    dest = tmp_path / "repo"
    dest.mkdir()
    for name in ("setup.py", "upstream.json", "pyproject.toml", "README.md"):
        shutil.copy2(repo / name, dest / name)
    for folder in ("patches", "tools", "tests", "nvflare"):
        shutil.copytree(repo / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def forktool(root, *args):
    return subprocess.run(
        [sys.executable, str(root / "tools" / "forktool.py"), *args], capture_output=True, text=True, timeout=300
    )


def test_repo_patches_are_canonical(repo):
    proc = forktool(repo, "check")
    assert proc.returncode == 0, proc.stderr
    assert "apply and re-export byte-identically" in proc.stdout


def test_repo_patches_pass_lint(repo):
    proc = forktool(repo, "lint")
    assert proc.returncode == 0, proc.stderr


def test_tree_then_export_round_trips(repo_copy, fork_build):
    before = {p.name: p.read_bytes() for p in (repo_copy / "patches").iterdir()}
    assert forktool(repo_copy, "tree").returncode == 0
    tree = repo_copy / ".work" / "tree"
    log = subprocess.run(["git", "-C", str(tree), "log", "--format=%s"], capture_output=True, text=True).stdout
    assert log.splitlines()[-1] == "upstream nvflare 2.9.0 (nvflare-2.9.0-py3-none-any.whl)"
    assert len(log.splitlines()) == 1 + len(fork_build.read_series())
    proc = forktool(repo_copy, "export")
    assert proc.returncode == 0, proc.stderr
    assert {p.name: p.read_bytes() for p in (repo_copy / "patches").iterdir()} == before


def test_tree_refuses_to_overwrite_work(repo_copy):
    assert forktool(repo_copy, "tree").returncode == 0
    proc = forktool(repo_copy, "tree")
    assert proc.returncode == 1
    assert "exists (it may hold unexported work); export it first or pass --force" in proc.stderr


def test_check_catches_a_hand_edited_patch(repo_copy, fork_build):
    name = fork_build.read_series()[0]
    patch = repo_copy / "patches" / name
    patch.write_text(patch.read_text().replace("Forwarded: no\n", "Forwarded: no \n", 1))
    proc = forktool(repo_copy, "check")
    assert proc.returncode == 1
    assert f"check: patches/{name} is not in canonical form (run tree + export and commit the result)" in proc.stderr


def test_check_catches_a_patch_missing_from_series(repo_copy, fork_build):
    name = fork_build.read_series()[0]
    shutil.copy2(repo_copy / "patches" / name, repo_copy / "patches" / "stray.patch")
    proc = forktool(repo_copy, "check")
    assert proc.returncode == 1
    assert "check: patches/stray.patch is not listed in patches/series" in proc.stderr


def test_lint_catches_missing_header_and_missing_test(repo_copy, fork_build):
    name = fork_build.read_series()[0]
    patch = repo_copy / "patches" / name
    patch.write_text(patch.read_text().replace("Why-Not-Overlay:", "Reason:", 1))
    for test in (repo_copy / "tests").rglob("*.py"):
        test.write_text(test.read_text().replace(name, "the storage patch"))
    proc = forktool(repo_copy, "lint")
    assert proc.returncode == 1
    assert f"lint: {name}: header lacks 'Why-Not-Overlay:'" in proc.stderr
    assert f"lint: {name}: no test under tests/ names it (each patch needs a behaviour test)" in proc.stderr


def test_lint_catches_a_patch_that_is_not_a_hook(repo_copy, fork_build):
    name = fork_build.read_series()[0]
    patch = repo_copy / "patches" / name
    text = patch.read_text()
    extra = "".join(f"+# line {i}\n" for i in range(20))
    patch.write_text(text.replace('+    MODEL = "MODEL"\n', '+    MODEL = "MODEL"\n' + extra, 1))
    proc = forktool(repo_copy, "lint")
    assert proc.returncode == 1
    assert f"lint: {name}: changes 30 lines (> 12); move the logic into the overlay" in proc.stderr


def test_readme_patch_table_is_generated_and_checked(repo_copy, fork_build):
    name = fork_build.read_series()[0]
    table = forktool(repo_copy, "changes").stdout
    assert table.splitlines()[0] == "| patch | upstream file(s) | what and why | upstream |"
    assert f"| `{name}` | `nvflare/apis/storage.py` | Adds DataTypes.MODEL" in table
    readme = repo_copy / "patches" / "README.md"
    assert table in readme.read_text(), "patches/README.md carries the generated table"
    assert "forktool changes" not in (repo_copy / "README.md").read_text(), "the user README has no copy"
    readme.write_text(readme.read_text().replace(f"| `{name}` |", "| `renamed.patch` |"))
    proc = forktool(repo_copy, "check")
    assert proc.returncode == 1
    assert "check: patches/README.md's patch table is stale (run forktool.py changes --write)" in proc.stderr
    assert forktool(repo_copy, "changes", "--write").returncode == 0
    assert forktool(repo_copy, "check").returncode == 0
