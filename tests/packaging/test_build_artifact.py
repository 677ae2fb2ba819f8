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
"""The fork wheel against the upstream wheel: only the intended files differ."""

import base64
import csv
import hashlib
import io
import os
import zipfile

import pytest

UP_INFO = "nvflare-2.9.0.dist-info"
FORK_INFO = "nvflare-2.9.0+model.1.dist-info"


def _entries(wheel):
    with zipfile.ZipFile(wheel) as z:
        return {i.filename: (i, z.read(i)) for i in z.infolist()}


@pytest.fixture(scope="module")
def up(upstream_wheel):
    return _entries(upstream_wheel)


@pytest.fixture(scope="module")
def fork(fork_wheel):
    return _entries(fork_wheel)


@pytest.fixture(scope="module")
def patched(fork_build):
    """Upstream paths the patch series touches."""
    out = set()
    for name in fork_build.read_series():
        out.update(fork_build.patch_targets(fork_build.PATCHES_DIR / name))
    return out


def test_wheel_name_and_version(fork_wheel, fork):
    assert fork_wheel.name == "nvflare-2.9.0+model.1-py3-none-any.whl"
    metadata = fork[f"{FORK_INFO}/METADATA"][1].decode()
    assert "\nVersion: 2.9.0+model.1\n" in metadata
    assert '"version": "2.9.0+model.1"' in fork["nvflare/_version.py"][1].decode()


def test_file_set_is_upstream_plus_overlay(up, fork, fork_build):
    renamed = {n.replace(UP_INFO, FORK_INFO) for n in up}
    overlay = set(fork_build.overlay_files())
    assert overlay, "the overlay adds modules"
    assert "nvflare/__init__.py" not in overlay
    assert set(fork) == renamed | overlay | {f"{FORK_INFO}/MODIFICATIONS"}
    assert not overlay & set(up), "overlay files must never shadow upstream files"


def test_unchanged_files_are_byte_identical_with_same_modes(up, fork, patched):
    intended = patched | {"nvflare/_version.py", f"{UP_INFO}/METADATA", f"{UP_INFO}/RECORD"}
    checked = 0
    for name, (info, data) in up.items():
        if name in intended:
            continue
        f_info, f_data = fork[name.replace(UP_INFO, FORK_INFO)]
        assert f_data == data, name
        assert f_info.external_attr == info.external_attr, name
        checked += 1
    assert checked > 1300


def test_file_modes(up, fork, fork_build):
    def executable(info):
        return bool((info.external_attr >> 16) & 0o111)

    up_exec = {n for n, (i, _) in up.items() if executable(i)}
    assert len(up_exec) == 11
    assert {n.replace(UP_INFO, FORK_INFO) for n in up_exec} <= {n for n, (i, _) in fork.items() if executable(i)}
    for name in fork_build.overlay_files():
        on_disk = os.access(fork_build.ROOT / name, os.X_OK)
        assert executable(fork[name][0]) == on_disk, f"{name} keeps its exec bit"
    assert executable(fork["nvflare/lighter/impl/install_nvflare_fork.sh"][0])


def test_metadata_differs_only_in_version(up, fork):
    a = up[f"{UP_INFO}/METADATA"][1].decode().splitlines()
    b = fork[f"{FORK_INFO}/METADATA"][1].decode().splitlines()
    diff = [(x, y) for x, y in zip(a, b) if x != y]
    assert len(a) == len(b)
    assert diff == [("Version: 2.9.0", "Version: 2.9.0+model.1")]
    assert any(line.startswith("Requires-Dist: grpcio") for line in b)
    assert any(line == "Provides-Extra: pt" for line in b)


def test_entry_points_and_top_level_packages(fork):
    assert "nvflare = nvflare.cli:main" in fork[f"{FORK_INFO}/entry_points.txt"][1].decode()
    assert fork[f"{FORK_INFO}/top_level.txt"][1].decode().split() == ["nvflare", "nvflight"]
    assert any(n.startswith("nvflight/") for n in fork)
    assert f"{FORK_INFO}/licenses/LICENSE" in fork


def test_patched_files_carry_the_modified_notice(up, fork, patched):
    assert "nvflare/apis/storage.py" in patched
    for name in patched:
        lines = fork[name][1].decode().splitlines()
        up_lines = up[name][1].decode().splitlines()
        header = next(i for i, line in enumerate(up_lines) if not line.startswith("#"))
        notice = lines[header]
        assert notice.startswith("# Modified by the nvflare model fork"), name
        assert f"{FORK_INFO}/MODIFICATIONS" in notice
        assert lines[:header] == up_lines[:header], "the upstream license header is untouched"
        if header:
            assert lines[header - 1] == "# limitations under the License.", "the notice follows the license header"
        assert sum("Modified by the nvflare model fork" in line for line in lines) == 1


def test_modifications_manifest(fork, patched, fork_build):
    text = fork[f"{FORK_INFO}/MODIFICATIONS"][1].decode()
    assert "5f2b6739d332c32bfe82176e7b23757fff718e4b83563f829ee42c761bb15c2d" in text
    for name in patched:
        assert f"  {name}  <- patches/" in text
    for name in fork_build.overlay_files():
        assert f"  {name}\n" in text
    assert "nvflare/_version.py  (version stamp)" in text
    assert fork_build.MOVED_OVERLAY_MODULES, "the moved overlay modules are listed"
    for old, new in fork_build.MOVED_OVERLAY_MODULES.items():
        assert f"  {old} -> {new}\n" in text
        assert old not in fork, f"{old} moved: the wheel has no copy at the old path"
        if new.startswith("nvflare/"):
            assert new in fork, f"{old} moved to {new}, which the wheel has"


def test_record_matches_every_file(fork):
    rows = list(csv.reader(io.StringIO(fork[f"{FORK_INFO}/RECORD"][1].decode())))
    listed = {r[0] for r in rows}
    assert listed == set(fork)
    for path, digest, size in rows:
        if path.endswith("/RECORD"):
            assert digest == size == ""
            continue
        data = fork[path][1]
        expected = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert (digest, int(size)) == (expected, len(data)), path
    assert list(fork)[-1] == f"{FORK_INFO}/RECORD", "RECORD is the last entry"


def test_build_is_deterministic(fork_build, tmp_path):
    first = fork_build.build_wheel_file(tmp_path / "a", log=lambda m: None)
    second = fork_build.build_wheel_file(tmp_path / "b", log=lambda m: None)
    assert fork_build.sha256_of(first) == fork_build.sha256_of(second)
