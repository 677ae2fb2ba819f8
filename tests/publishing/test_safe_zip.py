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
"""safe_zip and the backfill's choice of files, on crafted archives and configs (no system)."""

import io
import stat
import struct
import zipfile

import pytest
from crafted_zips import absolute_path, bomb, build, dot_dot, duplicate, symlink

from nvflare.app_common.model_publishing.model_backfill import model_sources
from nvflare.fuel.utils.safe_zip import ArchiveRefused, SafeZip, ZipLimits

REAL = {"app_server/config/config_fed_server.json": b"{}", "app_server/FL_global_model.pt": b"weights" * 100}


def open_zip(tmp_path, data: bytes, **limits):
    path = tmp_path / "ws.zip"
    path.write_bytes(data)
    return SafeZip(str(path), ZipLimits(**limits) if limits else ZipLimits(), label="ws")


@pytest.mark.parametrize(
    "make",
    [
        absolute_path,
        dot_dot,
        bomb,
        lambda m: symlink(m, "app_server/FL_global_model.pt"),
        lambda m: duplicate(m, "app_server/FL_global_model.pt"),
    ],
)
def test_hostile_archive_refused_whole(tmp_path, make):
    data, reason = make(REAL)
    with pytest.raises(ArchiveRefused) as e:
        open_zip(tmp_path, data)
    assert str(e.value) == f"ws: {reason}"


def test_other_special_entries(tmp_path):
    fifo = zipfile.ZipInfo("app_server/pipe")
    fifo.create_system, fifo.external_attr = 3, (stat.S_IFIFO | 0o600) << 16
    with pytest.raises(
        ArchiveRefused, match=r"^ws: entry 'app_server/pipe' is not a regular file or folder \(mode 0o10600\)$"
    ):
        open_zip(tmp_path, build(REAL, [(fifo, b"")]))
    with pytest.raises(ArchiveRefused, match=r"^ws: entry 'a\\\\b' has a backslash in its name$"):
        open_zip(tmp_path, build(REAL, [("a\\b", b"")]))
    with pytest.raises(ArchiveRefused, match=r"^ws: entry 'C:/x' is an absolute path$"):
        open_zip(tmp_path, build(REAL, [("C:/x", b"")]))
    with pytest.raises(ArchiveRefused, match=r"^ws: entry 'a/./b' appears more than once$"):
        open_zip(tmp_path, build({"a/b": b"1"}, [("a/./b", b"2")]))


def test_declared_sizes_bounded(tmp_path):
    data = build(REAL)
    with pytest.raises(
        ArchiveRefused,
        match=r"^ws: entry 'app_server/FL_global_model.pt' declares 700 bytes, more than the limit of 100$",
    ):
        open_zip(tmp_path, data, max_member_size=100)
    with pytest.raises(ArchiveRefused, match=r"^ws: its entries declare 702 bytes in all, more than the limit of 701$"):
        open_zip(tmp_path, data, max_total_size=701)
    with pytest.raises(ArchiveRefused, match=r"^ws: it has 2 entries, more than the limit of 1$"):
        open_zip(tmp_path, data, max_entries=1)


def _lie_about_size(data: bytes, name: bytes, declared: int) -> bytes:
    """Set the uncompressed size of ``name`` in the local header and the central directory."""
    out = bytearray(data)
    at = out.find(b"PK\x01\x02")
    while at >= 0:
        n = struct.unpack_from("<H", out, at + 28)[0]
        if bytes(out[at + 46 : at + 46 + n]) == name:
            struct.pack_into("<I", out, at + 24, declared)
            local = struct.unpack_from("<I", out, at + 42)[0]
            struct.pack_into("<I", out, local + 22, declared)
        at = out.find(b"PK\x01\x02", at + 4)
    return bytes(out)


def test_member_holding_more_or_fewer_bytes_than_declared(tmp_path):
    data = build(REAL, compression=zipfile.ZIP_DEFLATED)
    for declared, msg in (
        (10, "holds more bytes than it declares|is corrupt"),
        (5000, "holds 700 bytes but declares 5000|is corrupt"),
    ):
        with open_zip(tmp_path, _lie_about_size(data, b"app_server/FL_global_model.pt", declared)) as z:
            with pytest.raises(ArchiveRefused, match=rf"^ws: entry 'app_server/FL_global_model.pt' ({msg})"):
                z.extract_to("app_server/FL_global_model.pt", str(tmp_path / "out"))
        assert not (tmp_path / "out").exists()


def test_extract_and_read(tmp_path):
    with open_zip(tmp_path, build(REAL)) as z:
        sha, size = z.extract_to("app_server/FL_global_model.pt", str(tmp_path / "m.pt"))
        assert (tmp_path / "m.pt").read_bytes() == REAL["app_server/FL_global_model.pt"] and size == 700
        with pytest.raises(ArchiveRefused, match="declares 700 bytes, more than 10"):
            z.read("app_server/FL_global_model.pt", 10)
        with pytest.raises(ArchiveRefused, match="^ws: no file 'nope'$"):
            z.read("nope", 10)
        with pytest.raises(FileExistsError):
            z.extract_to("app_server/FL_global_model.pt", str(tmp_path / "m.pt"))


def test_model_sources_follow_the_config():
    pt = {
        "components": [
            {
                "id": "persistor",
                "path": "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor",
                "args": {"global_model_file_name": "sub/final.pt"},
            }
        ]
    }
    sources, problem = model_sources(pt, "app_server")
    assert problem == ""
    assert [(s.kind, s.member, s.file_name, s.model_format) for s in sources] == [
        ("global", "app_server/sub/final.pt", "final.pt", "pt_checkpoint"),
        ("best", "app_server/best_FL_global_model.pt", "best_FL_global_model.pt", "pt_checkpoint"),
    ]
    tf = {"components": [{"id": "persistor", "path": "nvflare.app_opt.tf.model_persistor.TFModelPersistor"}]}
    assert [(s.member, s.model_format) for s in model_sources(tf, "app_srv")[0]] == [
        ("app_srv/tf_model.weights.h5", "TensorFlow")
    ]
    ccwf = {
        "components": [
            {"id": "p", "path": "nvflare.app_common.ccwf.comps.np_file_model_persistor.NPFileModelPersistor"}
        ]
    }
    assert [s.member for s in model_sources(ccwf, "app_server")[0]] == [
        "models/last_global_model.npy",
        "models/best_global_model.npy",
    ]
    outside = {
        "components": [
            {"id": "persistor", "path": "PTFileModelPersistor", "args": {"best_global_model_file_name": "/root/x.pt"}}
        ]
    }
    best = model_sources(outside, "app_server")[0][1]
    assert best.member is None
    assert (
        best.problem
        == "PTFileModelPersistor best_global_model_file_name '/root/x.pt' is an absolute path, outside the job's workspace"
    )
    none = {"components": [{"id": "persistor", "path": "my.custom.Persistor"}]}
    assert model_sources(none, "app_server") == (
        [],
        (
            "its server config has no persistor that backfill knows (PTFileModelPersistor, TFModelPersistor, "
            "NPModelPersistor, NPFileModelPersistor); its components: Persistor (the live publisher's FL-context "
            "fallback needs the running job)"
        ),
    )
