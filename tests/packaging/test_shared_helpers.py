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
"""The helpers that replaced copies (issue 13): one file hash, one RECORD writer, one git
environment. No FLARE system (the fast lane).

Expected values are computed here independently (hashlib over the bytes, PEP 427's RECORD
form), and every caller that used to carry its own copy is run on the same inputs, so a
caller that drifts from the helper fails here, at block boundaries where copies differ.
"""

import base64
import csv
import hashlib
import io
import os
import subprocess
import zipfile

import pytest

from nvflare.fuel.utils import file_digest
from nvflare.fuel.utils.file_digest import (
    BLOCK,
    Sha256Counter,
    blocks_sha256_and_size,
    fd_sha256_and_size,
    pread_blocks,
    sha256_and_size,
)
from nvflare.fuel.utils.wheel_record import WheelWriter, record_hash

# Empty, one byte, and both sides of each block boundary the readers cut at.
SIZES = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + BLOCK // 2]


def _data(size: int) -> bytes:
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def _expected(data: bytes):
    return hashlib.sha256(data).hexdigest(), len(data)


@pytest.fixture(params=SIZES, ids=lambda n: f"{n}B")
def sample(request, tmp_path):
    data = _data(request.param)
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    return path, data


# --------------------------------------------------------------------------------------
# file_digest
# --------------------------------------------------------------------------------------


def test_path_digest_is_sha256_and_size_of_the_bytes(sample):
    path, data = sample
    assert sha256_and_size(path) == sha256_and_size(str(path)) == _expected(data)


def test_fd_digest_reads_the_whole_file_whatever_the_position(sample):
    path, data = sample
    with open(path, "rb") as f:
        f.seek(len(data) // 2)
        assert fd_sha256_and_size(f.fileno()) == _expected(data)
        assert f.tell() == len(data) // 2, "pread leaves the caller's position alone"


def test_pread_blocks_cut_at_the_block_size_from_the_offset(tmp_path):
    data = _data(10)
    (tmp_path / "f").write_bytes(data)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert list(pread_blocks(fd, block=4)) == [data[0:4], data[4:8], data[8:10]]
        assert list(pread_blocks(fd, offset=7, block=4)) == [data[7:10]]
        assert list(pread_blocks(fd, offset=10)) == []
        assert [len(b) for b in pread_blocks(fd)] == [10], "1 MiB blocks by default"
    finally:
        os.close(fd)


def test_counter_fed_in_any_pieces_equals_one_pass():
    data = _data(3 * 4096 + 17)
    counter = Sha256Counter()
    for start, end in [(0, 1), (1, 4096), (4096, 4096), (4096, 10000), (10000, len(data))]:
        counter.update(data[start:end])
    assert counter.result() == (counter.hexdigest(), counter.size) == _expected(data)
    assert blocks_sha256_and_size([]) == _expected(b"")


def test_every_former_copy_now_measures_through_the_helper(sample, tmp_path):
    """Each place that hashed files with its own loop gives the helper's answer, byte for byte."""
    from nvflare.apis.utils.component_records import FILE_NAME, SHA256, SIZE, make_record
    from nvflare.app_common.model_publishing.run_folder_files import open_in_run_folder
    from nvflare.fuel.utils.safe_zip import SafeZip

    path, data = sample
    expected = _expected(data)

    record = make_record(str(path))  # the store, the backfill and the download command's fallback
    assert (record[SHA256], record[SIZE], record[FILE_NAME]) == (*expected, "model.bin")

    with open_in_run_folder(str(path), str(tmp_path)) as opened:  # the publisher's stream mode
        assert opened.sha256_and_size() == expected
        opened.copy_to(str(tmp_path / "copy.bin"))
    assert (tmp_path / "copy.bin").read_bytes() == data

    archive = tmp_path / "workspace.zip"  # the backfill's extraction
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        z.writestr("app_server/model.bin", data)
    with SafeZip(str(archive), label="workspace archive") as z:
        assert z.extract_to("app_server/model.bin", str(tmp_path / "extracted.bin")) == expected


def test_prehash_of_a_multi_block_model_is_the_helpers(tmp_path):
    """The background pre-hasher reads the opened file through the helper's blocks."""
    import logging

    from nvflare.app_common.model_publishing.model_prehash import ModelPreHasher

    data = _data(2 * BLOCK + 5)
    model = tmp_path / "app_server" / "FL_global_model.pt"
    model.parent.mkdir()
    model.write_bytes(data)
    hasher = ModelPreHasher(logging.getLogger("test_prehash_blocks"), str(tmp_path))
    try:
        hasher.offer([str(model)])
        assert hasher.wait_idle(30)
    finally:
        hasher.stop()
    found = hasher.get(str(model))
    assert (found.sha256, found.size) == _expected(data)


def test_the_build_hashes_with_the_overlay_module_itself(fork_build, repo, sample):
    """setup.py cannot import nvflare (pip's isolated build has none): it loads the overlay
    file by path, so the build's hash and the fork's are one implementation, not two."""
    path, data = sample
    module = fork_build.overlay_module("file_digest")
    assert os.path.samefile(module.__file__, repo / "nvflare" / "fuel" / "utils" / "file_digest.py")
    assert fork_build.sha256_of(path) == _expected(data)[0]
    with open(file_digest.__file__, "rb") as installed, open(module.__file__, "rb") as built_with:
        assert installed.read() == built_with.read(), "the installed helper is the file the build used"


# --------------------------------------------------------------------------------------
# wheel_record
# --------------------------------------------------------------------------------------


def _pep427_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_record_hash_is_pep_427s_form():
    for data in (b"", b"a", _data(BLOCK + 3)):
        assert record_hash(data) == _pep427_hash(data)
        assert "=" not in record_hash(data).split("=", 1)[1], "no base64 padding"


def test_wheel_writer_records_each_entry_as_written_and_itself_last(tmp_path):
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    a = zipfile.ZipInfo("demo/a.py", (2020, 1, 2, 3, 4, 6))
    a.compress_type = zipfile.ZIP_DEFLATED
    a.external_attr = 0o100755 << 16
    b = zipfile.ZipInfo("demo/b,with comma.txt", (1980, 1, 1, 0, 0, 0))
    with zipfile.ZipFile(path, "w") as z:
        wheel = WheelWriter(z)
        wheel.add(a, b"print('a')\n" * 100, compresslevel=9)
        wheel.add(b, b"")
        wheel.write_record(zipfile.ZipInfo("demo-1.0.dist-info/RECORD", (1980, 1, 1, 0, 0, 0)))
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        assert [i.filename for i in infos] == ["demo/a.py", "demo/b,with comma.txt", "demo-1.0.dist-info/RECORD"]
        assert (infos[0].compress_type, infos[0].external_attr >> 16, infos[0].date_time) == (
            zipfile.ZIP_DEFLATED,
            0o100755,
            (2020, 1, 2, 3, 4, 6),
        ), "the entry keeps the caller's compression, mode and date"
        assert infos[1].compress_type == zipfile.ZIP_STORED
        rows = list(csv.reader(io.StringIO(z.read("demo-1.0.dist-info/RECORD").decode())))
        assert rows == [
            ["demo/a.py", _pep427_hash(z.read("demo/a.py")), str(len(z.read("demo/a.py")))],
            ["demo/b,with comma.txt", _pep427_hash(b""), "0"],
            ["demo-1.0.dist-info/RECORD", "", ""],
        ]


def test_the_build_writes_wheels_with_the_overlay_module_itself(fork_build, repo):
    module = fork_build.overlay_module("wheel_record")
    assert os.path.samefile(module.__file__, repo / "nvflare" / "fuel" / "utils" / "wheel_record.py")


def test_the_installed_fork_rebuilds_a_wheel_whose_record_matches(tmp_path):
    """fork_image (container images, cloud VMs) writes through the same writer; pip would
    refuse the wheel if a row disagreed with its file."""
    from nvflare.lighter.impl.fork_image import write_installed_wheel

    wheel = write_installed_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        record = [n for n in names if n.endswith(".dist-info/RECORD")]
        assert record == [names[-1]], "one RECORD, written last"
        rows = list(csv.reader(io.StringIO(z.read(record[0]).decode())))
        assert {r[0] for r in rows} == set(names)
        for name, digest, size in rows:
            if name == record[0]:
                assert digest == size == ""
            else:
                data = z.read(name)
                assert (digest, int(size)) == (_pep427_hash(data), len(data)), name
        assert "nvflare/fuel/utils/wheel_record.py" in names


# --------------------------------------------------------------------------------------
# git environment
# --------------------------------------------------------------------------------------

OUTER_GIT = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR")


def _git(cwd, *args, env=None):
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture
def outer_repo(tmp_path, monkeypatch):
    """A repository whose git runs us (as a hook or git rebase --exec would), with a plain
    folder inside it where the build applies patches."""
    outer = tmp_path / "outer"
    outer.mkdir()
    assert _git(outer, "init", "-q").returncode == 0
    monkeypatch.setenv("GIT_DIR", str(outer / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(outer))
    monkeypatch.setenv("GIT_INDEX_FILE", str(outer / ".git" / "index"))
    tree = outer / "build" / "tree"
    tree.mkdir(parents=True)
    return outer, tree


def test_git_env_drops_the_outer_gits_location_and_sets_the_ceiling(fork_build, outer_repo):
    outer, tree = outer_repo
    env = fork_build.git_env(tree, {"GIT_AUTHOR_NAME": "x", "GIT_INDEX_FILE": "/tmp/index"})
    assert env["GIT_CEILING_DIRECTORIES"] == str(tree.parent)
    assert env["GIT_AUTHOR_NAME"] == "x"
    assert env["GIT_INDEX_FILE"] == "/tmp/index", "the caller's own values come last"
    assert not {"GIT_DIR", "GIT_WORK_TREE"} & set(env)
    assert not set(OUTER_GIT) & set(fork_build.git_env(tree))
    assert env["PATH"] == os.environ["PATH"], "the rest of the environment is kept"


def test_a_patch_applies_to_the_build_tree_not_to_the_git_that_runs_us(fork_build, outer_repo):
    """With the outer git's GIT_DIR in the environment, git apply would patch (or refuse)
    relative to the outer repository; the build's tree is what it must change."""
    outer, tree = outer_repo
    (tree / "hello.py").write_text("print('hello')\n")
    patch = tree.parent / "greet.patch"
    patch.write_text(
        "diff --git a/hello.py b/hello.py\n"
        "--- a/hello.py\n"
        "+++ b/hello.py\n"
        "@@ -1 +1 @@\n"
        "-print('hello')\n"
        "+print('hello, fork')\n"
    )
    fork_build.apply_patch(tree, patch)
    assert (tree / "hello.py").read_text() == "print('hello, fork')\n"
    assert not (outer / "hello.py").exists()
    # The same call with the outer environment left in place does not reach the tree.
    (tree / "hello.py").write_text("print('hello')\n")
    _git(tree, "apply", "-p1", str(patch))
    assert (tree / "hello.py").read_text() == "print('hello')\n", "the hazard the helper removes is real"


def _load_forktool(repo):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("forktool_under_test", repo / "tools" / "forktool.py")
    forktool = importlib.util.module_from_spec(spec)
    path, setup_module = list(sys.path), sys.modules.get("setup")
    try:
        spec.loader.exec_module(forktool)  # it puts the repo on sys.path to import setup.py
    finally:
        sys.path[:] = path
        if setup_module is None:
            sys.modules.pop("setup", None)
    return forktool


def test_forktool_runs_git_in_its_own_tree(repo, outer_repo):
    """forktool's git() (tree, export, check, rebase) uses the build's environment plus its identity."""
    outer, tree = outer_repo
    forktool = _load_forktool(repo)
    forktool.git(tree, "init", "-q")
    (tree / "f.txt").write_text("x\n")
    forktool.git(tree, "add", "f.txt")
    forktool.git(tree, "commit", "-q", "-m", "one")
    assert (tree / ".git").is_dir()
    assert forktool.git(tree, "log", "--format=%an <%ae>").strip() == "nvflare fork tool <forktool@localhost>"
    assert _git(outer, "rev-parse", "--verify", "-q", "HEAD").returncode != 0, "nothing was committed outside"


def test_generated_regions_are_written_by_one_function(repo, tmp_path):
    """forktool.write_region puts the patch table, the settings table and the drift and
    parity reports into their docs; the text around the markers stays as it is."""
    forktool = _load_forktool(repo)
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- b -->\nold\nrows\n<!-- e --> after\nend\n")
    forktool.write_region(doc, "<!-- b -->", "<!-- e -->", "new\n")
    assert doc.read_text() == "intro\n<!-- b -->\nnew\n<!-- e --> after\nend\n"
    doc.write_text("no markers\n")
    with pytest.raises(SystemExit, match="^docs/x.md lacks the markers '<!-- b -->' ... '<!-- e -->'$"):
        forktool.write_region(doc, "<!-- b -->", "<!-- e -->", "new\n", "docs/x.md")
    assert doc.read_text() == "no markers\n", "nothing written"
    for tool in ("settings_table.py", "upstream_drift.py", "upstream_parity.py"):
        text = (repo / "tools" / tool).read_text()
        assert "forktool.write_region(" in text and "lacks the markers" not in text, tool
