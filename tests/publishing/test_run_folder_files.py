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
"""The publishing rule on real files (no FLARE system): what run_folder_files opens, links,
copies, deletes and creates, including files and symlinks swapped after the check.

Layout of every test: ``tmp/job`` is the run folder, ``tmp/outside`` holds a "secret".
"""

import hashlib
import os
import threading

import pytest

from nvflare.app_common.model_publishing import run_folder_files as rff
from nvflare.app_common.model_publishing.run_folder_files import (
    RULE,
    RefusedFile,
    check_in_run_folder,
    create_in_run_folder,
    open_in_run_folder,
    remove_from_run_folder,
    remove_run_folder_dir,
)

SECRET = b"-----BEGIN PRIVATE KEY----- not a model"
MODEL = b"model bytes " * 1000


@pytest.fixture
def tree(tmp_path):
    run = tmp_path / "job"
    (run / "app_server").mkdir(parents=True)
    (run / "app_server" / "FL_global_model.pt").write_bytes(MODEL)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "server.key").write_bytes(SECRET)
    return run, outside


def refusal(path, reason):
    return f"{path!r} {reason}: {RULE}"


def test_regular_file_inside_is_opened_and_read_from_its_descriptor(tree):
    run, _ = tree
    model = run / "app_server" / "FL_global_model.pt"
    with open_in_run_folder(str(model), str(run)) as opened:
        assert opened.real_path == str(model)
        assert opened.relative_path == os.path.join("app_server", "FL_global_model.pt")
        assert opened.sha256_and_size() == (hashlib.sha256(MODEL).hexdigest(), len(MODEL))
        assert opened.pread(5, 0) == MODEL[:5]
        assert opened.link_to(str(run / "linked"))
        assert os.stat(run / "linked").st_ino == os.stat(model).st_ino
        os.remove(run / "linked")
        ident = opened.identity()
        assert ident[:3] == [os.stat(model).st_dev, os.stat(model).st_ino, len(MODEL)]
    # relative to the run folder, as the store receives it
    with open_in_run_folder("app_server/FL_global_model.pt", str(run)) as opened:
        assert opened.real_path == str(model)


def test_absolute_path_outside_is_refused_with_path_and_rule(tree):
    run, outside = tree
    key = str(outside / "server.key")
    with pytest.raises(RefusedFile) as e:
        open_in_run_folder(key, str(run))
    assert str(e.value) == refusal(key, f"resolves to {key!r}, outside the job's run folder {str(run)!r}")


def test_dotdot_path_is_refused(tree):
    run, outside = tree
    path = str(run / "app_server" / ".." / ".." / "outside" / "server.key")
    with pytest.raises(RefusedFile) as e:
        open_in_run_folder(path, str(run))
    assert "outside the job's run folder" in str(e.value)
    with pytest.raises(RefusedFile):
        open_in_run_folder("../outside/server.key", str(run))


def test_the_run_folder_itself_and_its_prefix_siblings_are_outside(tree, tmp_path):
    run, _ = tree
    sibling = tmp_path / "job2"
    sibling.mkdir()
    (sibling / "m.pt").write_bytes(MODEL)
    for path in (str(run), str(sibling / "m.pt")):
        with pytest.raises(RefusedFile):
            open_in_run_folder(path, str(run))


def test_symlink_inside_to_outside_is_refused(tree):
    run, outside = tree
    link = run / "app_server" / "best_FL_global_model.pt"
    link.symlink_to(outside / "server.key")
    with pytest.raises(RefusedFile) as e:
        open_in_run_folder(str(link), str(run))
    assert str(e.value) == refusal(
        str(link), f"resolves to {str(outside / 'server.key')!r}, outside the job's run folder {str(run)!r}"
    )


def test_symlink_inside_to_a_file_inside_is_allowed(tree):
    run, _ = tree
    link = run / "best.pt"
    link.symlink_to(run / "app_server" / "FL_global_model.pt")
    with open_in_run_folder(str(link), str(run)) as opened:
        assert opened.real_path == str(run / "app_server" / "FL_global_model.pt")
        assert opened.pread(len(MODEL), 0) == MODEL


def test_directory_fifo_and_hard_link_are_refused(tree):
    run, outside = tree
    with pytest.raises(RefusedFile) as e:
        open_in_run_folder(str(run / "app_server"), str(run))
    assert str(e.value) == refusal(str(run / "app_server"), "is not a regular file")

    fifo = run / "fifo.pt"
    os.mkfifo(fifo)
    done = []
    worker = threading.Thread(
        target=lambda: done.append(pytest.raises(RefusedFile, open_in_run_folder, str(fifo), str(run)))
    )
    worker.start()
    worker.join(10)
    assert done, "opening a FIFO blocked"
    assert str(done[0].value) == refusal(str(fifo), "is not a regular file")

    hard = run / "hard.pt"
    os.link(outside / "server.key", hard)
    with pytest.raises(RefusedFile) as e:
        open_in_run_folder(str(hard), str(run))
    assert str(e.value) == refusal(str(hard), "has 2 hard links (another name may lie outside the run folder)")


def test_missing_file_is_not_a_refusal(tree):
    run, _ = tree
    with pytest.raises(FileNotFoundError):
        open_in_run_folder(str(run / "app_server" / "nothing.pt"), str(run))


def test_bad_paths_are_refused(tree):
    run, _ = tree
    for bad in (None, "", 7, "a\x00b"):
        with pytest.raises(RefusedFile) as e:
            open_in_run_folder(bad, str(run))
        assert str(e.value) == refusal(bad, "is not a file path")


def test_symlink_swapped_in_after_the_first_look_is_caught_on_the_descriptor(tree, monkeypatch):
    """The race the pre-check cannot win: the path is swapped for a symlink out between the first
    look and the open. The descriptor's real path decides."""
    run, outside = tree
    model = run / "app_server" / "FL_global_model.pt"
    real_check = rff.check_in_run_folder

    def check_then_swap(path, run_dir):
        result = real_check(path, run_dir)
        os.remove(model)
        model.symlink_to(outside / "server.key")
        return result

    monkeypatch.setattr(rff, "check_in_run_folder", check_then_swap)
    with pytest.raises(RefusedFile) as e:
        open_in_run_folder(str(model), str(run))
    assert str(e.value) == refusal(
        str(model), f"resolves to {str(outside / 'server.key')!r}, outside the job's run folder {str(run)!r}"
    )


def test_swaps_after_open_change_nothing(tree, tmp_path):
    """Once open, the file's path is never resolved again: replacing it by a symlink to the secret
    changes neither the bytes read nor what is copied, linking the swapped path is detected
    (nothing linked), and deletion refuses."""
    run, outside = tree
    model = run / "app_server" / "FL_global_model.pt"
    staging = tmp_path / "staging"
    staging.mkdir()
    with open_in_run_folder(str(model), str(run)) as opened:
        os.rename(model, run / "moved.pt")
        model.symlink_to(outside / "server.key")
        assert opened.sha256_and_size()[0] == hashlib.sha256(MODEL).hexdigest()
        linked = opened.link_to(str(staging / "linked"))
        if linked:  # through /proc/self/fd: the very inode that was opened
            assert os.stat(staging / "linked").st_ino == opened.dev_ino[1]
            assert (staging / "linked").read_bytes() == MODEL
        else:  # by path: the swapped-in symlink was linked, seen to differ, and removed
            assert not os.path.lexists(staging / "linked")
        opened.copy_to(str(staging / "copied"))
        assert (staging / "copied").read_bytes() == MODEL
        with pytest.raises(RefusedFile) as e:
            remove_from_run_folder(opened)
        assert str(e.value) == refusal(str(model), "is no longer the published file")
    assert (outside / "server.key").read_bytes() == SECRET
    assert os.path.islink(model)


def test_folder_swapped_for_a_symlink_out_is_not_deleted_from(tree):
    run, outside = tree
    model = run / "app_server" / "FL_global_model.pt"
    (outside / "FL_global_model.pt").write_bytes(SECRET)
    with open_in_run_folder(str(model), str(run)) as opened:
        os.rename(run / "app_server", run / "old")
        (run / "app_server").symlink_to(outside)
        with pytest.raises(RefusedFile) as e:
            remove_from_run_folder(opened)
        assert str(e.value) == refusal(str(model), "is no longer in its folder (the folder was replaced)")
    assert (outside / "FL_global_model.pt").read_bytes() == SECRET


def test_remove_deletes_the_published_file_only(tree):
    run, _ = tree
    model = run / "app_server" / "FL_global_model.pt"
    with open_in_run_folder(str(model), str(run)) as opened:
        remove_from_run_folder(opened)
    assert not model.exists() and (run / "app_server").is_dir()


def test_deleted_file_is_copied_not_linked(tree, tmp_path):
    run, _ = tree
    model = run / "app_server" / "FL_global_model.pt"
    with open_in_run_folder(str(model), str(run)) as opened:
        os.remove(model)
        assert not opened.link_to(str(tmp_path / "linked"))
        assert not (tmp_path / "linked").exists()
        opened.copy_to(str(tmp_path / "copied"))
    assert (tmp_path / "copied").read_bytes() == MODEL


def test_fallback_file_is_created_inside_the_run_folder(tree):
    run, _ = tree
    f, path = create_in_run_folder(str(run), ".model_publish", "global_model.1.npz")
    with f:
        f.write(b"x")
    assert path == str(run / ".model_publish" / "global_model.1.npz")
    assert (run / ".model_publish" / "global_model.1.npz").read_bytes() == b"x"
    with pytest.raises(FileExistsError):
        create_in_run_folder(str(run), ".model_publish", "global_model.1.npz")
    remove_run_folder_dir(str(run), ".model_publish")
    assert not (run / ".model_publish").exists()


def test_fallback_never_writes_through_a_planted_symlink(tree):
    run, outside = tree
    (run / ".model_publish").symlink_to(outside)
    with pytest.raises(RefusedFile) as e:
        create_in_run_folder(str(run), ".model_publish", "global_model.1.npz")
    assert str(e.value) == refusal(str(run / ".model_publish"), "is not a directory of the run folder (a symlink?)")
    remove_run_folder_dir(str(run), ".model_publish")
    assert os.listdir(outside) == ["server.key"] and (outside / "server.key").read_bytes() == SECRET

    os.remove(run / ".model_publish")
    (run / ".model_publish").mkdir()
    (run / ".model_publish" / "global_model.2.npz").symlink_to(outside / "server.key")
    with pytest.raises(FileExistsError):
        create_in_run_folder(str(run), ".model_publish", "global_model.2.npz")
    assert (outside / "server.key").read_bytes() == SECRET


def test_check_without_opening(tree):
    run, outside = tree
    root, full = check_in_run_folder("app_server/none.pt", str(run))
    assert (root, full) == (str(run), str(run / "app_server" / "none.pt"))
    with pytest.raises(RefusedFile):
        check_in_run_folder(str(outside / "server.key"), str(run))


def test_prehasher_hashes_only_files_inside_the_run_folder(tree):
    """The background hasher (model_prehash) never opens a path the rule refuses, and says so once."""
    import logging

    from nvflare.app_common.model_publishing.model_prehash import ModelPreHasher

    run, outside = tree
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("test_prehash_confined")
    logger.addHandler(Collect())
    logger.setLevel(logging.INFO)
    key = str(outside / "server.key")
    model = str(run / "app_server" / "FL_global_model.pt")
    hasher = ModelPreHasher(logger, str(run))
    try:
        hasher.offer([key, model])
        hasher.offer([key])
        assert hasher.wait_idle(10)
    finally:
        hasher.stop()
    assert hasher.get(key) is None
    assert hasher.get(model).sha256 == hashlib.sha256(MODEL).hexdigest()
    refused = [m for m in records if m.startswith("Model pre-hashing refused")]
    assert refused == [
        "Model pre-hashing refused " + refusal(key, f"resolves to {key!r}, outside the job's run folder {str(run)!r}")
    ]


def test_stream_reads_the_checked_descriptor_not_the_path(tree):
    """What the store pulls in stream mode comes from the opened file, whatever the path names later."""
    from nvflare.app_common.widgets.model_publisher import _OpenFileDownloadable
    from nvflare.fuel.f3.streaming.download_service import ProduceRC

    run, outside = tree
    model = run / "app_server" / "FL_global_model.pt"
    with open_in_run_folder(str(model), str(run)) as opened:
        os.remove(model)
        model.symlink_to(outside / "server.key")
        source = _OpenFileDownloadable(opened, len(MODEL))
        source.chunk_size = 4096
        received, state = b"", {}
        while True:
            rc, chunk, state = source.produce(state, "server")
            if rc == ProduceRC.EOF:
                break
            assert rc == ProduceRC.OK
            received += chunk
        assert received == MODEL
        assert source.produce({"received_bytes": -1}, "server")[0] == ProduceRC.ERROR


FULL_VOLUME_COPY = """
import os, resource, signal, sys
from nvflare.app_common.model_publishing.run_folder_files import open_in_run_folder
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
model, run, dest = sys.argv[1:]
with open_in_run_folder(model, run) as opened:
    try:
        opened.copy_to(dest)
    except OSError as e:
        print(e.errno, os.path.lexists(dest))
"""


def test_a_copy_that_cannot_be_written_leaves_no_partial_file(tree, tmp_path):
    """The store's copy into its staging folder on a full volume (12000 bytes, 4096 writable)."""
    import errno
    import subprocess
    import sys

    run, _ = tree
    model = run / "app_server" / "FL_global_model.pt"
    dest = tmp_path / "staged"
    proc = subprocess.run(
        [sys.executable, "-c", FULL_VOLUME_COPY, str(model), str(run), str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.split() == [str(errno.EFBIG), "False"], proc.stderr
    assert not dest.exists()
