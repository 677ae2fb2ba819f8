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
"""The job store's workspace archive (upstream FilesystemStorage, as the server parent calls it at job
end) never follows what a job planted in its run folder, and backfill judges its members by it.

Behaviour test for storage-the-workspace-archive-never-follows-a-link-the-job-planted.patch:
without it the archive holds the symlinked secret's bytes and blocks on the FIFO.
"""

import io
import os
import threading
import zipfile

import pytest

from nvflare.app_common.model_publishing.model_backfill import member_origin, missing_member_note
from nvflare.app_common.storages.filesystem_storage import FilesystemStorage
from nvflare.app_common.storages.workspace_archive import ARCHIVE_MARK, LINKED_MARK
from nvflare.fuel.utils.safe_zip import SafeZip

SECRET = b"-----BEGIN PRIVATE KEY-----\nthe parent's model-signing key\n"


@pytest.fixture
def run_folder(tmp_path):
    """A finished job's run folder with everything a hostile job's code can leave in it."""
    outside = tmp_path / "signing"
    outside.mkdir()
    (outside / "model_signing.key").write_bytes(SECRET)
    run = tmp_path / "ws" / "job1"
    (run / "app_server" / "config").mkdir(parents=True)
    (run / "models").mkdir()
    (run / "app_server" / "config" / "config_fed_server.json").write_text("{}")
    (run / "models" / "server.npy").write_bytes(b"a real model")
    (run / "models" / "own.npy").write_bytes(b"hard-linked model")
    os.link(run / "models" / "own.npy", run / "models" / "twin.npy")
    os.symlink(outside / "model_signing.key", run / "app_server" / "FL_global_model.pt")
    os.symlink(outside, run / "app_server" / "stolen_dir")
    os.mkfifo(run / "models" / "pipe")
    return run


def archive(tmp_path, sources) -> bytes:
    """The workspace component exactly as job_def_manager.save_workspace writes it (a list of folders)."""
    storage = FilesystemStorage(root_dir=str(tmp_path / "store"), uri_root="/")
    storage.create_object("/job1", b"job data", {"k": "v"})
    done = {}

    def write():
        done["path"] = storage.update_object("/job1", [str(s) for s in sources], "workspace")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(30)
    assert not writer.is_alive(), "the archive blocked (on the FIFO?)"
    with open(done["path"], "rb") as f:
        return f.read()


def test_links_and_special_files_are_left_out_hard_links_marked(run_folder, tmp_path):
    data = archive(tmp_path, [run_folder])
    assert SECRET not in data
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.comment == ARCHIVE_MARK
        names = z.namelist()
        assert sorted(names) == [
            "app_server/",
            "app_server/config/",
            "app_server/config/config_fed_server.json",
            "models/",
            "models/own.npy",
            "models/server.npy",
            "models/twin.npy",
        ]
        assert z.read("models/server.npy") == b"a real model"
        assert z.getinfo("models/server.npy").comment == b""
        assert z.getinfo("models/own.npy").comment == LINKED_MARK == z.getinfo("models/twin.npy").comment
        # upstream's order: a folder's files first, then its subfolders' entries
        assert names.index("models/server.npy") > names.index("models/")


def test_backfill_refuses_what_live_publishing_refuses_and_records_what_it_cannot_check(run_folder, tmp_path):
    path = tmp_path / "workspace.zip"
    path.write_bytes(archive(tmp_path, [run_folder]))
    with SafeZip(str(path), label="workspace archive") as z:
        assert member_origin(z, "models/server.npy") == ("", [])
        assert member_origin(z, "models/twin.npy") == (
            "models/twin.npy had more than one hard link in the job's run folder (another name may lie outside it): "
            "only a regular file inside the job's own run folder may be published",
            [],
        )
        assert missing_member_note(z, "app_server/FL_global_model.pt") == (
            "app_server/FL_global_model.pt is not in the workspace archive (it leaves out the run folder's symlinks "
            "and special files, which live publishing refuses too)"
        )
    # an archive written without these rules (upstream, or a server before the fork)
    old = tmp_path / "old.zip"
    with zipfile.ZipFile(old, "w") as z:
        z.writestr("models/server.npy", SECRET)
    with SafeZip(str(old), label="workspace archive") as z:
        assert member_origin(z, "models/server.npy") == (
            "",
            [
                "that models/server.npy was a regular file of the job's run folder: this workspace archive was not "
                "written by the nvflare model fork, and such an archive holds a symlink's or a hard link's target as "
                "a regular file (live publishing refuses both)"
            ],
        )
        assert missing_member_note(z, "x") == "x is not in the workspace archive"


def test_regular_content_is_archived_as_upstream_did(tmp_path):
    """Files given directly keep their base name; bad items are refused with upstream's message."""
    folder = tmp_path / "logs"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a")
    single = tmp_path / "audit.log"
    single.write_text("audit")
    with zipfile.ZipFile(io.BytesIO(archive(tmp_path, [folder, single]))) as z:
        assert sorted(z.namelist()) == ["audit.log", "sub/", "sub/a.txt"]
        assert z.read("audit.log") == b"audit"
    storage = FilesystemStorage(root_dir=str(tmp_path / "store2"), uri_root="/")
    storage.create_object("/job2", b"job data", {})
    from nvflare.apis.storage import StorageException

    with pytest.raises(StorageException) as e:
        storage.update_object("/job2", [str(tmp_path / "missing")], "workspace")
    assert "items in content list must be existing file or directory paths but got" in str(e.value)
