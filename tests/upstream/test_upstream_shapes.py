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
"""Patched upstream modules keep the names and call shapes upstream's own tests rely on.

Upstream's unit tests replace module attributes (``admin.AuthzFilter``,
``binary_transfer.add_file``) with stand-ins of upstream's signature; a patch that renames
one or adds an argument by default fails them (tools/upstream_parity.sh finds these).
These are the two the fork once broke, pinned here so they stay fixed:
admin-server-audit-refused-commands-and-sweep-stale-transfer-folders.patch and
binary-transfer-configurable-admin-download-timeout-and-chunk-size.patch.
The real behaviour of both is proved on running systems (test_download_component_authz,
test_download_settings).
"""

from types import SimpleNamespace

import pytest

from nvflare.fuel.hci.conn import Connection
from nvflare.fuel.hci.server import binary_transfer
from nvflare.fuel.hci.server.audited_authz import AuditedAuthzFilter
from nvflare.fuel.hci.server.authz import AuthzFilter
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.fuel.hci.server.download_settings import add_file_chunk_args
from nvflare.private.fed.server import admin

CHUNK_ENV = "NVFLARE_ADMIN_DOWNLOAD_CHUNK_SIZE"


@pytest.fixture(autouse=True)
def fresh_config():
    """ConfigService caches each value it found; every test reads its own environment."""
    from nvflare.fuel.utils.config_service import ConfigService

    ConfigService.reset()
    yield
    ConfigService.reset()


def test_admin_module_keeps_upstreams_authz_filter_name():
    assert admin.AuthzFilter is AuditedAuthzFilter
    assert issubclass(admin.AuthzFilter, AuthzFilter)


class _Downloader:
    tx_id = "tx-1"

    def __init__(self, **kwargs):
        self.timeout = kwargs["timeout"]

    def delete_transaction(self):
        pass


class _Sessions:
    idle_timeout = 1800
    monitor_interval = 5

    def bind_download(self, *args):
        return True

    def mark_download_active(self, *args):
        pass


def _download_folder(tmp_path, monkeypatch) -> list:
    """Run BinaryTransfer.download_folder with add_file replaced by upstream's signature."""
    calls = []

    def add_file(downloader, file_name):  # upstream's tests stub it with exactly these
        calls.append(file_name)
        return f"ref-{len(calls)}"

    monkeypatch.setattr(binary_transfer, "add_file", add_file)
    monkeypatch.setattr(binary_transfer, "ObjectDownloader", _Downloader)
    (tmp_path / "cmd-tx" / "job-1").mkdir(parents=True)
    (tmp_path / "cmd-tx" / "job-1" / "a.bin").write_bytes(b"a")
    cell = SimpleNamespace(get_fqcn=lambda: "server")
    conn = Connection(
        props={
            ConnProps.DOWNLOAD_DIR: str(tmp_path),
            ConnProps.ENGINE: SimpleNamespace(get_cell=lambda: cell),
            ConnProps.ADMIN_SERVER: SimpleNamespace(timeout=10, sess_mgr=_Sessions()),
            ConnProps.SESSION: SimpleNamespace(sess_id="s-1"),
        }
    )
    binary_transfer.BinaryTransfer().download_folder(conn, "cmd-tx", "job-1")
    assert conn.buffer.output["data"][0]["data"] == "OK", conn.buffer.output
    return calls


def test_unset_chunk_size_keeps_upstreams_add_file_call(tmp_path, monkeypatch):
    monkeypatch.delenv(CHUNK_ENV, raising=False)
    assert add_file_chunk_args() == {}
    assert _download_folder(tmp_path, monkeypatch) == [str(tmp_path / "cmd-tx" / "job-1" / "a.bin")]


def test_configured_chunk_size_is_passed(monkeypatch):
    monkeypatch.setenv(CHUNK_ENV, "65536")
    assert add_file_chunk_args() == {"chunk_size": 65536}


def test_configured_chunk_size_is_still_validated(monkeypatch):
    from nvflare.fuel.common.excepts import ConfigError

    monkeypatch.setenv(CHUNK_ENV, "12")
    with pytest.raises(ConfigError, match="12 must be between 4096 and 268435456 bytes"):
        add_file_chunk_args()
