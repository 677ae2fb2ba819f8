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
"""forktool rebase onto a synthetic upstream release: git merges, the report says how each patch fared.

The release is built here from the pinned 2.9.0 wheel with three edits: lines added far
above the docker builder's hook (the patch still applies as it is), a changed context
line right next to the security hook (git apply refuses, the 3-way merge succeeds), and a
changed line that the storage patch replaces (a real conflict). The conflict is then
resolved with plain git, and export/check accept the result.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

DOCKER = "docker-builder-generated-images-install-the-fork-wheel.patch"
SECURITY = "security-download-job-component-in-the-download-job-category.patch"
STORAGE = "storage-model-data-type-and-a-strict-component-name-rule.patch"
NEW_VALID = "        valid_components = {DATA, META, WORKSPACE, CHECKPOINT, *VALID_COMPONENT_PREFIXES}\n"

EDITS = {
    # far from the hook: the patch applies at an offset
    "nvflare/lighter/impl/docker.py": ("\nimport copy\n", "\n# new in 2.9.1\n# (two comment lines)\nimport copy\n"),
    # the context line just above the hooked lines changes
    "nvflare/security/security.py": (
        "    AC.SHELL_TAIL: CommandCategory.SHELL_COMMANDS,\n",
        "    AC.SHELL_TAIL: CommandCategory.SHELL_COMMANDS,  # tail -n only\n",
    ),
    # a line the storage patch removes changes
    "nvflare/apis/storage.py": (
        "        valid_components = {DATA, META, WORKSPACE, *VALID_COMPONENT_PREFIXES}\n",
        NEW_VALID,
    ),
}


def make_release(upstream_wheel, dest_dir, version="2.9.1"):
    """nvflare-<version>-py3-none-any.whl: the 2.9.0 wheel with EDITS and the new version."""
    dest = dest_dir / f"nvflare-{version}-py3-none-any.whl"
    with zipfile.ZipFile(upstream_wheel) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            name = info.filename.replace("nvflare-2.9.0.dist-info/", f"nvflare-{version}.dist-info/")
            if info.filename in EDITS:
                old, new = EDITS[info.filename]
                text = data.decode()
                assert text.count(old) == 1, info.filename
                data = text.replace(old, new).encode()
            elif info.filename == "nvflare/_version.py":
                data = data.replace(b'"version": "2.9.0"', f'"version": "{version}"'.encode())
            elif name.endswith(".dist-info/METADATA"):
                data = data.replace(b"\nVersion: 2.9.0\n", f"\nVersion: {version}\n".encode())
            new_info = zipfile.ZipInfo(name, info.date_time)
            new_info.external_attr = info.external_attr
            zout.writestr(new_info, data)
    return dest


@pytest.fixture
def rebase_setup(repo, tmp_path, upstream_wheel):
    src = tmp_path / "repo"
    src.mkdir()
    for name in ("setup.py", "editable_finder.py", "upstream.json", "pyproject.toml", "README.md"):
        shutil.copy2(repo / name, src / name)
    for folder in ("patches", "tools", "tests", "nvflare", "docs"):
        shutil.copytree(repo / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    cache.mkdir()
    os.symlink(upstream_wheel, cache / upstream_wheel.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NVFLARE_FORK_", "GIT_"))}
    env["NVFLARE_FORK_CACHE"] = str(cache)
    release = make_release(upstream_wheel, tmp_path)
    return src, env, release, cache


def forktool(src, env, *args):
    return subprocess.run(
        [sys.executable, str(src / "tools" / "forktool.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def git(tree, *args):
    return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, check=True).stdout


def take_patch_side(path):
    """Resolve each conflict block by the patch's side (what a maintainer would decide here)."""
    text = path.read_text()
    resolved = re.sub(r"<<<<<<< [^\n]*\n.*?=======\n(.*?)>>>>>>> [^\n]*\n", r"\1", text, flags=re.S)
    assert resolved != text and "<<<<<<<" not in resolved
    path.write_text(resolved)


def test_rebase_merges_reports_each_patch_and_leaves_a_git_resolvable_tree(rebase_setup, fork_build):
    src, env, release, cache = rebase_setup
    series = fork_build.read_series()
    proc = forktool(src, env, "rebase", str(release))
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert f"rebase: {len(series)} patch(es) from nvflare 2.9.0 onto 2.9.1" in out
    outcome = {
        name: kind
        for kind, name in re.findall(
            r"^  (applies unchanged|merged automatically|conflicts)\s+(\S+\.patch)$", out, re.M
        )
    }
    assert set(outcome) == set(series)
    assert outcome[DOCKER] == "applies unchanged"
    assert outcome[SECURITY] == "merged automatically"
    assert outcome[STORAGE] == "conflicts"
    assert [n for n, k in outcome.items() if k != "applies unchanged"] == [STORAGE, SECURITY]
    assert re.search(rf"  conflicts\s+{STORAGE}\n      nvflare/apis/storage\.py: lines \d+-\d+\n", out), out

    pin = json.loads((src / "upstream.json").read_text())
    assert (pin["version"], pin["wheel"], pin["fork_revision"]) == ("2.9.1", release.name, 1)
    assert pin["sha256"] == fork_build.sha256_of(release)
    assert (cache / release.name).is_file()

    # The tree: old upstream, new upstream, the patches mid-rebase, stopped at the conflict.
    tree = src / ".work" / "tree"
    assert (
        git(tree, "log", "-1", "--format=%s", "upstream") == "upstream nvflare 2.9.1 (nvflare-2.9.1-py3-none-any.whl)\n"
    )
    assert (
        git(tree, "log", "-1", "--format=%s", "upstream-old")
        == "upstream nvflare 2.9.0 (nvflare-2.9.0-py3-none-any.whl)\n"
    )
    assert git(tree, "diff", "--name-only", "--diff-filter=U") == "nvflare/apis/storage.py\n"
    refused = forktool(src, env, "export")
    assert refused.returncode == 1
    assert "a rebase is in progress" in refused.stderr

    take_patch_side(tree / "nvflare" / "apis" / "storage.py")
    git(tree, "add", "nvflare/apis/storage.py")
    subprocess.run(["git", "-C", str(tree), "rebase", "--continue"], check=True, env={**env, "GIT_EDITOR": "true"})
    assert len(git(tree, "rev-list", "upstream..HEAD").split()) == len(series)

    assert forktool(src, env, "export").returncode == 0
    assert forktool(src, env, "changes", "--write").returncode == 0
    check = forktool(src, env, "check")
    # The patches are canonical; what is left are the reports made from the old series, each
    # named with the command that regenerates it (the drift and parity reports need a clone).
    stale = [line for line in check.stderr.splitlines() if line.startswith("check: ")]
    assert [line.split(":", 2)[1].strip() for line in stale] == [
        "docs/settings.md",
        "docs/contributing/upstream-drift.md",
        "docs/contributing/upstream-parity.md",
    ], check.stderr
    assert all("was produced from patch series" in line and "regenerate it: " in line for line in stale)
    assert forktool(src, env, "lint").returncode == 0
    storage = (src / "patches" / STORAGE).read_text()
    assert "-" + NEW_VALID in storage, "the storage patch now replaces 2.9.1's line"
    security = (src / "patches" / SECURITY).read_text()
    assert "     AC.SHELL_TAIL: CommandCategory.SHELL_COMMANDS,  # tail -n only\n" in security
    docker = (src / "patches" / DOCKER).read_text()
    assert "@@ -21,6 +21,7 @@ import shutil" in docker  # the same hunk, two lines further down
    assert (src / "patches" / "series").read_text().split()[-len(series) :] == series


def test_rebase_refuses_the_pinned_version_and_a_misnamed_wheel(rebase_setup, upstream_wheel, tmp_path):
    src, env, release, _ = rebase_setup
    same = forktool(src, env, "rebase", str(upstream_wheel))
    assert same.returncode == 1
    assert "forktool: upstream.json already pins nvflare 2.9.0" in same.stderr
    renamed = tmp_path / "nvflare-latest.whl"
    shutil.copy2(release, renamed)
    bad = forktool(src, env, "rebase", str(renamed))
    assert bad.returncode == 1
    assert (
        "forktool: nvflare-latest.whl: a nvflare 2.9.1 wheel must be named nvflare-2.9.1-py3-none-any.whl" in bad.stderr
    )
    assert json.loads((src / "upstream.json").read_text())["version"] == "2.9.0"
