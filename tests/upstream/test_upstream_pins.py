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
"""Upstream behaviour the overlay relies on without a public function for it, pinned.

Where upstream offers no public way to get what the fork needs, the overlay either copies
one formula (the admin download timeout) or calls a private method (the FLARE API
Session's ``_do_command`` and ``_validate_job_id``, which every method of Session uses and
which the fork's Session methods must behave like). Each is checked here against
upstream's own code, fast and without a FLARE system, so that a rebase onto an upstream
that changes one fails here, naming what to update, instead of deep inside a system test
or not at all.
"""

import os
from types import SimpleNamespace

import pytest

from nvflare.fuel.hci.conn import Connection
from nvflare.fuel.hci.server import binary_transfer
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.fuel.hci.server.download_settings import (
    ADMIN_DOWNLOAD_TIMEOUT,
    admin_download_idle_timeout,
    env_var_name,
    upstream_download_timeout,
)

TIMEOUT_ENV = env_var_name(ADMIN_DOWNLOAD_TIMEOUT)


@pytest.fixture(autouse=True)
def fresh_config(monkeypatch):
    """ConfigService caches each value it found; every test reads its own environment."""
    from nvflare.fuel.utils.config_service import ConfigService

    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    ConfigService.reset()
    yield
    ConfigService.reset()


# --------------------------------------------------------------------------------------
# The admin download inactivity timeout (download_settings.upstream_download_timeout)
# --------------------------------------------------------------------------------------


class _Sessions:
    def __init__(self, idle_timeout, monitor_interval):
        self.idle_timeout = idle_timeout
        self.monitor_interval = monitor_interval

    def bind_download(self, *args):
        return True

    def mark_download_active(self, *args):
        pass


def _admin(timeout, idle_timeout, monitor_interval):
    return SimpleNamespace(timeout=timeout, sess_mgr=_Sessions(idle_timeout, monitor_interval))


def _upstreams_timeout(tmp_path, monkeypatch, admin) -> float:
    """The timeout upstream's BinaryTransfer.download_folder gives its ObjectDownloader."""
    seen = []

    class Downloader:
        tx_id = "tx-1"

        def __init__(self, **kwargs):
            seen.append(kwargs["timeout"])

        def delete_transaction(self):
            pass

    monkeypatch.setattr(binary_transfer, "ObjectDownloader", Downloader)
    monkeypatch.setattr(binary_transfer, "add_file", lambda downloader, file_name, **kw: "ref")
    folder = tmp_path / "cmd-tx" / "job-1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.bin").write_bytes(b"a")
    cell = SimpleNamespace(get_fqcn=lambda: "server")
    conn = Connection(
        props={
            ConnProps.DOWNLOAD_DIR: str(tmp_path),
            ConnProps.ENGINE: SimpleNamespace(get_cell=lambda: cell),
            ConnProps.ADMIN_SERVER: admin,
            ConnProps.SESSION: SimpleNamespace(sess_id="s-1"),
        }
    )
    binary_transfer.BinaryTransfer().download_folder(conn, "cmd-tx", "job-1")
    assert len(seen) == 1, "download_folder made no ObjectDownloader: see how upstream serves folders now"
    return seen[0]


# (admin timeout, session idle timeout, monitor interval): each side of the max wins once.
CASES = [(10.0, 1800, 5), (5000.0, 1800, 5), (30.0, 20, 15), (60.0, 40, 20), (3.0, 0.5, 0.25)]


@pytest.mark.parametrize("timeout,idle,monitor", CASES)
def test_upstream_download_timeout_is_upstreams_own(tmp_path, monkeypatch, timeout, idle, monitor):
    admin = _admin(timeout, idle, monitor)
    upstream = _upstreams_timeout(tmp_path, monkeypatch, admin)
    assert upstream_download_timeout(admin) == upstream, (
        f"upstream's BinaryTransfer.download_folder now gives its downloads an inactivity timeout of "
        f"{upstream} s for admin.timeout={timeout}, idle_timeout={idle}, monitor_interval={monitor}; "
        f"download_settings.upstream_download_timeout (download_job_component, download admission) "
        f"still computes {upstream_download_timeout(admin)} s: make it upstream's formula again"
    )


def test_admin_download_timeout_overrides_upstreams_for_every_download(tmp_path, monkeypatch):
    admin = _admin(10.0, 1800, 5)
    assert admin_download_idle_timeout(admin) == 1805
    monkeypatch.setenv(TIMEOUT_ENV, "42")
    from nvflare.fuel.utils.config_service import ConfigService

    ConfigService.reset()
    assert admin_download_idle_timeout(admin) == 42.0
    assert _upstreams_timeout(tmp_path, monkeypatch, admin) == 42.0, "the patched upstream path agrees"


# --------------------------------------------------------------------------------------
# Transaction folders (JobComponentCommandModule)
# --------------------------------------------------------------------------------------


def _conn(download_dir) -> Connection:
    return Connection(props={ConnProps.DOWNLOAD_DIR: str(download_dir)})


def test_tx_path_is_the_folder_upstreams_downloads_use(tmp_path):
    """download_job_component fills tx_path(conn, tx) through the job manager and removes it
    with tx_path, as upstream's download_job does (its _clean_up_download is private)."""
    from nvflare.fuel.hci.server.binary_transfer import BinaryTransfer
    from nvflare.private.fed.server.job_cmds import JobCommandModule

    assert issubclass(JobCommandModule, BinaryTransfer)
    conn = _conn(tmp_path)
    assert BinaryTransfer.tx_path(conn, "tx") == os.path.join(str(tmp_path), "tx")
    assert BinaryTransfer.tx_path(conn, "tx", "job-1") == os.path.join(str(tmp_path), "tx", "job-1")


def test_the_component_module_removes_a_whole_transaction_folder(tmp_path):
    from nvflare.private.fed.server.job_component_cmds import JobComponentCommandModule

    module = JobComponentCommandModule()
    conn = _conn(tmp_path)
    job = tmp_path / "tx-1" / "job-1"
    job.mkdir(parents=True)
    (job / "MODEL_global_model").write_bytes(b"m")
    os.symlink(job / "MODEL_global_model", job / "link")
    (tmp_path / "tx-2").mkdir()
    module._remove_tx_folder(conn, "tx-1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tx-2"], "that folder only"
    module._remove_tx_folder(conn, "tx-1")  # gone already: no error (a failed command cleans up twice)


# --------------------------------------------------------------------------------------
# FLARE API Session: the private methods the fork's Session methods call
# --------------------------------------------------------------------------------------


class _Api:
    """What Session._do_command talks to: the admin API, answering one reply."""

    closed = False
    session_expired_reason = None

    def __init__(self, reply):
        self.reply = reply
        self.commands = []

    def do_command(self, command, props=None):
        self.commands.append(command)
        return self.reply


def _session(reply):
    from nvflare.fuel.flare_api.flare_api import Session

    session = Session.__new__(Session)  # no server: _do_command only needs .api
    session.api = _Api(reply)
    return session


def _reply(status, info):
    from nvflare.fuel.hci.client.api import ResultKey
    from nvflare.fuel.hci.client.api_status import APIStatus
    from nvflare.fuel.hci.proto import MetaKey

    return {ResultKey.STATUS: APIStatus.SUCCESS, ResultKey.META: {MetaKey.STATUS: status, MetaKey.INFO: info}}


def test_session_do_command_turns_a_missing_component_into_the_message_the_fork_unwraps():
    """component_download._run recognises '<no_job_components>: <info>' to raise ComponentNotFound."""
    from nvflare.fuel.flare_api.api_spec import InternalError
    from nvflare.fuel.flare_api.component_download import ComponentNotFound, list_job_component_info
    from nvflare.fuel.hci.proto import MetaStatusValue

    info = "component MODEL_x not found in job j; the job has: MODEL_global_model"
    session = _session(_reply(MetaStatusValue.NO_JOB_COMPONENTS, info))
    with pytest.raises(InternalError) as e:
        session._do_command("download_job_component j MODEL_x")
    assert str(e.value) == f"{MetaStatusValue.NO_JOB_COMPONENTS}: {info}", (
        "upstream's Session._do_command no longer reports an unknown meta status as '<status>: <info>'; "
        "fix component_download._run (ComponentNotFound) and model_backfill._results (BackfillFailed)"
    )
    with pytest.raises(ComponentNotFound) as e:
        list_job_component_info(session, "j")
    assert str(e.value) == info


def test_session_do_command_turns_a_backfill_error_into_the_message_the_fork_unwraps():
    from nvflare.fuel.flare_api.model_backfill import BackfillFailed, backfill_job_model
    from nvflare.fuel.hci.proto import MetaStatusValue

    session = _session(_reply(MetaStatusValue.ERROR, "job j has no model to backfill"))
    session.api.cmd_timeout = None
    session.api.set_command_timeout = lambda t: setattr(session.api, "cmd_timeout", t)
    session.api.unset_command_timeout = lambda: setattr(session.api, "cmd_timeout", None)
    with pytest.raises(BackfillFailed) as e:
        backfill_job_model(session, "j", timeout=30)
    assert str(e.value) == "job j has no model to backfill"
    assert session.api.cmd_timeout is None, "the session's command timeout is restored"


@pytest.mark.parametrize(
    "status,error",
    [
        ("invalid_job_id", "JobNotFound"),
        ("not_authorized", "AuthorizationError"),
        ("internal_error", "InternalError"),
    ],
)
def test_session_do_command_raises_the_documented_errors(status, error):
    """The exceptions download_job_component / backfill_job_model document come from _do_command."""
    from nvflare.fuel.flare_api import api_spec
    from nvflare.fuel.hci.proto import MetaStatusValue

    assert status in {v for k, v in vars(MetaStatusValue).items() if not k.startswith("_")}
    session = _session(_reply(status, "why"))
    with pytest.raises(getattr(api_spec, error)):
        session._do_command("download_job_component j MODEL_x")


@pytest.mark.parametrize("job_id", [None, "", 7])
def test_session_validate_job_id_refuses_what_the_fork_methods_pass_on(job_id):
    from nvflare.fuel.flare_api.api_spec import JobNotFound
    from nvflare.fuel.flare_api.component_download import download_job_component

    session = _session(_reply("ok", ""))
    with pytest.raises(JobNotFound):
        session._validate_job_id(job_id)
    with pytest.raises(JobNotFound):
        download_job_component(session, job_id, "MODEL_global_model")
    assert session.api.commands == [], "refused before anything is sent"
