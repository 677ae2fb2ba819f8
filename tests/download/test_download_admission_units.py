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
"""download_admission against upstream's real SessionManager: the account bound counts the
downloads bound to every session of the user name, and the commands admitted but not yet
bound (pending), so commands arriving together from many sessions cannot slip under it.
The system tests (test_download_bounds) show the same through real admin sessions; the
pending window is too short to hit reliably there."""

import pytest

from nvflare.apis.fl_constant import AdminCommandNames as AC
from nvflare.fuel.hci.conn import Connection
from nvflare.fuel.hci.server import download_admission as da
from nvflare.fuel.hci.server.sess import SessionManager
from nvflare.fuel.utils.config_service import ConfigService

IDLE = 1805.0


@pytest.fixture
def limits(monkeypatch):
    ConfigService.reset()  # it keeps the values it read: each test reads its own environment
    for name, value in {"SESSION": "3", "USER": "5", "SERVER": "8"}.items():
        monkeypatch.setenv(f"NVFLARE_ADMIN_DOWNLOAD_{name}_LIMIT", value)
    monkeypatch.setenv("NVFLARE_ADMIN_DOWNLOAD_SERVER_RESERVE", "0")  # the reserve: test_download_transfer_bounds
    mgr = SessionManager(cell=None, monitor_interval=3600)
    yield mgr
    mgr.shutdown()
    da._pending.clear()
    ConfigService.reset()


def admit(mgr, sess):
    conn = Connection()
    return conn, da.admit(conn, AC.DOWNLOAD_JOB_COMPONENT, sess, mgr, IDLE)


def test_pending_commands_count_for_the_account(limits):
    mgr = limits
    sessions = [mgr.create_session("lead@nvidia.com", "nvidia", "lead", "admin@x") for _ in range(3)]
    # 5 commands admitted at once over 3 sessions, none bound yet: the account is full
    results = [admit(mgr, sessions[i % 3]) for i in range(5)]
    assert [r for _, r in results] == [None] * 5
    refused = da.user_limit_message("lead@nvidia.com", 5, IDLE)
    assert admit(mgr, sessions[2])[1] == refused
    # another account is not affected
    other = mgr.create_session("org-admin@nvidia.com", "nvidia", "org_admin", "admin@y")
    assert admit(mgr, other)[1] is None
    # the commands ran: two bound a download (one of them with its direct offer), three did not
    mgr.bind_download(sessions[0].sess_id, "tx1", lambda: None)
    mgr.bind_download(sessions[0].sess_id, "tx1" + da.OFFER_SUFFIX, lambda: None)
    mgr.bind_download(sessions[1].sess_id, "tx2", lambda: None)
    for conn, _ in results:
        da.release(conn)
    opened = [admit(mgr, sessions[2])[1] for _ in range(3)]  # 2 bound + 3 new = 5
    assert opened == [None, None, None]
    assert admit(mgr, sessions[1])[1] == refused
    # a logout of the session holding tx1 frees one for the account
    mgr.end_session_by_id(sessions[0].sess_id)
    assert admit(mgr, sessions[1])[1] is None


def test_session_limit_is_checked_before_the_account_and_the_server(limits):
    mgr = limits
    sess = mgr.create_session("lead@nvidia.com", "nvidia", "lead", "admin@x")
    assert [admit(mgr, sess)[1] for _ in range(4)][-1] == da.session_limit_message(3, IDLE)


def test_the_server_limit_still_holds_for_many_accounts(limits):
    mgr = limits
    users = [mgr.create_session(f"user{i}@nvidia.com", "nvidia", "lead", "admin@x") for i in range(3)]
    got = [admit(mgr, users[i % 3])[1] for i in range(9)]
    assert got[:8] == [None] * 8
    assert got[8] == da.server_limit_message(8, IDLE)


class _Admin:
    def __init__(self, sess_mgr):
        self.sess_mgr = sess_mgr


def test_an_account_keeps_its_most_recent_sessions(monkeypatch):
    """session_admission: beyond admin_session_user_limit the least recently active
    sessions of the account end (downloads cancelled), never the acting one, never another
    account's."""
    import time

    from nvflare.fuel.hci.server import session_admission as sa
    from nvflare.fuel.hci.server.constants import ConnProps

    monkeypatch.setenv("NVFLARE_ADMIN_SESSION_USER_LIMIT", "3")
    mgr = SessionManager(cell=None, monitor_interval=3600)
    mgr.cell = type("Cell", (), {"fire_and_forget": lambda self, **kw: None})()
    try:
        other = mgr.create_session("org-admin@nvidia.com", "nvidia", "org_admin", "admin@y")
        mine = []
        for i in range(5):
            mine.append(mgr.create_session("lead@nvidia.com", "nvidia", "lead", f"admin@{i}"))
            mine[-1].last_active_time = time.time() - 100 + i
        mine[0].last_active_time = time.time()  # the oldest login, but used just now
        cancelled = []
        mgr.bind_download(mine[1].sess_id, "tx", lambda: cancelled.append("tx"))
        conn = Connection()
        conn.set_prop(ConnProps.ADMIN_SERVER, _Admin(mgr))
        conn.set_prop(ConnProps.SESSION, mine[2])  # the acting session is kept even though idle longest now
        mine[2].last_active_time = time.time() - 1000
        assert sa.trim_sessions(conn, ["list_jobs"]) == [mine[1].sess_id, mine[3].sess_id]
        assert cancelled == ["tx"]
        left = {s.sess_id for s in mgr.get_sessions()}
        assert left == {other.sess_id, mine[0].sess_id, mine[2].sess_id, mine[4].sess_id}
        assert sa.trim_sessions(conn, ["list_jobs"]) == []
    finally:
        mgr.shutdown()
