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
"""sweep_stale_transfers on a real directory: transaction folders go, everything else stays.

The admin server's transfer directory also holds uploaded apps under their own names and
whatever an operator put there; the real-system test (tests/reliability/test_server_faults.py)
shows a killed server's folder going, this one that nothing else does.
"""

import uuid

from nvflare.fuel.hci.server.transfer_sweep import sweep_stale_transfers


def test_only_transaction_folders_are_removed(tmp_path):
    tx = str(uuid.uuid4())
    (tmp_path / tx / "some-job").mkdir(parents=True)
    (tmp_path / tx / "some-job" / "job.zip").write_bytes(b"zip copy of a job")
    kept = {
        "my_app": "dir",  # an uploaded app
        str(uuid.uuid4()).upper(): "dir",  # not how transaction ids are written
        str(uuid.uuid4()) + "-x": "dir",
        str(uuid.uuid4()): "file",  # a file, not a transaction folder
    }
    for name, kind in kept.items():
        if kind == "dir":
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_text("keep")
    link = str(uuid.uuid4())
    (tmp_path / link).symlink_to(tmp_path / "my_app")  # never follow a link out

    assert sweep_stale_transfers(str(tmp_path)) == [tx]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, link])


def test_missing_directory_is_fine(tmp_path):
    assert sweep_stale_transfers(str(tmp_path / "never-created")) == []
