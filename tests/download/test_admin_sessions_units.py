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
"""The login bounds' timeline, the settings' defaults and messages, the once-only login
signature and the session ledger against upstream's real SessionManager and Session
tokens (signed with a real key). test_admin_sessions_system.py shows the same through
real admin clients; here the clock is explicit, so every edge of a window is checked."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from nvflare.fuel.f3.cellnet.defs import MessageHeaderKey
from nvflare.fuel.f3.message import Message
from nvflare.fuel.hci.conn import Connection
from nvflare.fuel.hci.proto import ProtoKey
from nvflare.fuel.hci.server import login_binding, login_limits, session_ledger
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.fuel.hci.server.login_settings import LoginLimits
from nvflare.fuel.hci.server.sess import SessionManager
from nvflare.lighter.utils import Identity, generate_cert, generate_keys, serialize_cert, serialize_pri_key
from nvflare.private.defs import CellMessageHeaderKeys
from nvflare.private.fed.utils.identity_utils import IdentityAsserter

A, B = ("account", "lead@a.org"), ("connection", "admin_1")


@pytest.fixture
def limits():
    yield login_limits.configure(LoginLimits(window=60.0, failures=3, logins=5, concurrent=2))
    login_limits._limits = None


def admit(t, account="lead@a.org", peer="admin_1"):
    return login_limits.admit(account, peer, now=t)


def test_rate_limit_per_account_and_what_to_wait(limits):
    for t in range(5):
        assert admit(t) is None
        login_limits.finished("lead@a.org", "admin_1", ok=True, now=t + 0.01)
    assert admit(10) == login_limits.rate_message(A, 5, 60.0, 50)
    assert admit(59.5) == login_limits.rate_message(A, 5, 60.0, 1)
    assert admit(60) is None  # the first login left the window: one slot
    assert admit(60.5, peer="admin_2") == login_limits.rate_message(A, 5, 60.0, 1)  # any connection of the account
    assert admit(61, account="other@a.org", peer="admin_3") is None  # others are not touched


def test_rate_limit_per_connection(limits):
    for i in range(5):
        assert admit(i, account=f"user{i}@a.org") is None
        login_limits.finished(f"user{i}@a.org", "admin_1", ok=True, now=i)
    assert admit(5, account="user9@a.org") == login_limits.rate_message(B, 5, 60.0, 55)


def test_failures_lock_the_sender_out_for_good_credentials_too(limits):
    for t in range(3):
        assert admit(t) is None
        login_limits.finished("lead@a.org", "admin_1", ok=False, now=t)
    assert admit(3) == login_limits.failure_message(A, 3, 60.0, 57)
    assert admit(60) is None  # the first failure aged out
    assert login_limits.failure_message(A, 3, 60.0, 57) == (
        "REJECT: AUTH_LOGIN_LIMITED: too many failed logins of the account lead@a.org (3 in the last 60 s, "
        "admin_login_failure_limit = 3); try again in 57 s"
    )


def test_concurrent_checks_are_bounded_and_a_lost_one_expires(limits):
    assert admit(0) is None and admit(0) is None
    assert (
        admit(0)
        == login_limits.checking_message("lead@a.org", 2)
        == (
            "REJECT: AUTH_LOGIN_LIMITED: 2 logins of the account lead@a.org are being checked right now "
            "(admin_login_concurrency = 2); try again in a second"
        )
    )
    login_limits.finished("lead@a.org", "admin_1", ok=True, now=0.1)
    assert admit(0.2) is None
    # a handler that raised never reports: its slot is dropped after CHECKING_TTL
    assert admit(0.3) is not None
    assert admit(login_limits.CHECKING_TTL + 1) is None


def test_the_tables_are_swept(limits, monkeypatch):
    monkeypatch.setattr(login_limits, "SWEEP_AT", 10)
    for i in range(30):
        assert admit(i, account=f"u{i}@a.org", peer=f"admin_{i}") is None
        login_limits.finished(f"u{i}@a.org", f"admin_{i}", ok=True, now=i)
    assert len(login_limits._logins) == 60
    admit(1000, account="x@a.org", peer="admin_x")
    assert sorted(login_limits._logins) == [("account", "x@a.org"), ("connection", "admin_x")]


def test_a_flood_is_audited_then_counted(limits, monkeypatch):
    written = []
    monkeypatch.setattr(login_limits.AuditService, "add_event", lambda **kw: written.append(kw["msg"]))
    for i in range(25):
        login_limits.audit_refusal("lead@a.org", "_cert_login lead@a.org", "REJECT: x", "admin_1", now=i)
    assert written[: login_limits.AUDITED_PER_WINDOW - 1] == [" REFUSED: REJECT: x"] * 9
    assert written[9] == (
        " REFUSED: REJECT: x (further refusals from admin_1 in the next 60 s are counted, not written one by one)"
    )
    assert len(written) == 10
    login_limits.audit_refusal("lead@a.org", "_cert_login lead@a.org", "REJECT: y", "admin_1", now=70)
    assert written[10].startswith(" REFUSED: 15 more refused logins from admin_1 in the 60 s from ")
    assert written[11] == " REFUSED: REJECT: y"


SETTINGS = (
    "from nvflare.fuel.hci.server.login_settings import login_limits as f\n"
    "from nvflare.private.fed.server.model_backfill_limits import model_backfill_limit as b\n"
    "try:\n    print(tuple(f()), b())\nexcept Exception as e:\n    print(type(e).__name__ + ': ' + str(e))\n"
)


def _where(key: str) -> str:
    return f"{key} (server local/resources.json, --set {key}=..., or env NVFLARE_{key.upper()})"


@pytest.mark.parametrize(
    "env, printed",
    [
        ({}, "(60.0, 10, 120, 4) 2"),
        (
            {
                "NVFLARE_ADMIN_LOGIN_WINDOW": "30",
                "NVFLARE_ADMIN_LOGIN_FAILURE_LIMIT": "3",
                "NVFLARE_ADMIN_LOGIN_RATE_LIMIT": "20",
                "NVFLARE_ADMIN_LOGIN_CONCURRENCY": "1",
                "NVFLARE_MODEL_BACKFILL_LIMIT": "5",
            },
            "(30.0, 3, 20, 1) 5",
        ),
        (
            {"NVFLARE_ADMIN_LOGIN_WINDOW": "0.5"},
            f"ConfigError: invalid {_where('admin_login_window')}: 0.5 must be a number of seconds from 1 to 86400",
        ),
        (
            {"NVFLARE_ADMIN_LOGIN_WINDOW": "soon"},
            f"ConfigError: invalid {_where('admin_login_window')}: var admin_login_window's value 'soon' cannot be "
            "converted to float: could not convert string to float: 'soon'",
        ),
        (
            {"NVFLARE_ADMIN_LOGIN_RATE_LIMIT": "0"},
            f"ConfigError: invalid {_where('admin_login_rate_limit')}: 0 must be a whole number from 1 to 100000",
        ),
        (
            {"NVFLARE_ADMIN_LOGIN_CONCURRENCY": "many"},
            f"ConfigError: invalid {_where('admin_login_concurrency')}: var admin_login_concurrency's value 'many' "
            "cannot be converted to int: invalid literal for int() with base 10: 'many'",
        ),
        (
            {"NVFLARE_ADMIN_LOGIN_FAILURE_LIMIT": "50", "NVFLARE_ADMIN_LOGIN_RATE_LIMIT": "20"},
            "ConfigError: invalid admin_login_failure_limit: 50 is more than admin_login_rate_limit (20); failed "
            "logins are logins too",
        ),
        (
            {"NVFLARE_MODEL_BACKFILL_LIMIT": "0"},
            f"ConfigError: invalid {_where('model_backfill_limit')}: 0 must be a whole number from 1 to 64",
        ),
    ],
)
def test_setting_values_and_messages(env, printed):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NVFLARE_ADMIN_LOGIN", "NVFLARE_MODEL_BACKFILL"))}
    out = subprocess.run(
        [sys.executable, "-c", SETTINGS], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip().splitlines()[-1] == printed, out.stderr


# -- the login's connection and signature ----------------------------------------------------
def conn_for(client_name, signature=b"sig", secure=True, origin="admin_1") -> Connection:
    request = Message(headers={CellMessageHeaderKeys.CLIENT_NAME: client_name, MessageHeaderKey.ORIGIN: origin})
    return Connection(
        props={
            ConnProps.ENGINE: SimpleNamespace(server=SimpleNamespace(secure_train=secure)),
            ConnProps.REQUEST: request,
            ConnProps.CMD_HEADERS: {"signature": signature},
        }
    )


def test_a_login_counts_only_on_its_own_accounts_connection_and_only_once():
    sig = os.urandom(256)
    assert login_binding.check_login(conn_for("b@x.org", sig), "a@x.org") == login_binding.identity_message(
        "a@x.org", "b@x.org"
    )
    assert login_binding.check_login(conn_for("a@x.org", sig), "a@x.org") is None
    assert login_binding.check_login(conn_for("a@x.org", sig), "a@x.org") == login_binding.replay_message()
    assert login_binding.check_login(conn_for("a@x.org", os.urandom(256)), "a@x.org") is None
    # not in secure mode the client-name header is nobody's word: only the once-only rule
    assert login_binding.check_login(conn_for("b@x.org", os.urandom(256), secure=False), "a@x.org") is None
    assert login_binding.replay_message() == (
        "REJECT: AUTH_LOGIN_REPLAYED: this login signature was used before; a login is accepted once, from the "
        "admin client that signed it"
    )


def test_the_signature_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(login_binding, "SEEN_SIGNATURES", 3)
    first = os.urandom(64)
    login_binding.check_login(conn_for("a@x.org", first), "a@x.org")
    for _ in range(3):
        login_binding.check_login(conn_for("a@x.org", os.urandom(64)), "a@x.org")
    assert len(login_binding._seen) == 3
    assert login_binding.check_login(conn_for("a@x.org", first), "a@x.org") is None  # forgotten


# -- the session ledger --------------------------------------------------------------------
@pytest.fixture
def server(tmp_path):
    key, pub = generate_keys()
    identity = Identity("server")
    (tmp_path / "s.key").write_bytes(serialize_pri_key(key))
    (tmp_path / "s.crt").write_bytes(serialize_cert(generate_cert(identity, identity, key, pub, ca=True)))
    asserter = IdentityAsserter(str(tmp_path / "s.key"), str(tmp_path / "s.crt"))
    mgr = SessionManager(cell=SimpleNamespace(fire_and_forget=lambda **kw: None), monitor_interval=3600)
    hci = SimpleNamespace(get_id_asserter=lambda: asserter)
    yield mgr, hci, asserter
    mgr.shutdown()


def command_conn(mgr, hci, session, client_name):
    conn = conn_for(client_name)
    conn.set_props({ConnProps.ADMIN_SERVER: SimpleNamespace(sess_mgr=mgr), ConnProps.HCI_SERVER: hci})
    conn.set_prop(ConnProps.SESSION, session)
    return conn


def test_only_sessions_a_login_created_work_and_never_after_they_ended(server):
    mgr, hci, asserter = server
    session = mgr.create_session("lead@a.org", "a", "lead", "admin_1")
    token = session.make_token(asserter)
    login = Connection(props={ConnProps.ADMIN_SERVER: SimpleNamespace(sess_mgr=mgr), ConnProps.HCI_SERVER: hci})
    login.append_token(token)
    assert session_ledger.login_token(login) == token
    session_ledger.record_login(login, token)
    assert session_ledger.check_command(command_conn(mgr, hci, session, "lead@a.org")) is None
    # a live token from another account's connection: refused, nothing ended
    assert session_ledger.check_command(command_conn(mgr, hci, session, "other@b.org")) == (
        session_ledger.foreign_message("lead@a.org", "other@b.org")
    )
    assert mgr.get_session(token, asserter) is session
    # after logout upstream recreates it from the token; the ledger ends it again
    mgr.end_session_by_id(session.sess_id)
    recreated = mgr.recreate_session(token, "admin_9", asserter)
    assert recreated.sess_id == session.sess_id and recreated is not session
    assert session_ledger.check_command(command_conn(mgr, hci, recreated, "lead@a.org")) == (
        session_ledger.ended_message()
    )
    assert mgr.get_sessions() == []
    # a signed token of a session this server never created (a restart, a forgery): the same
    stranger = mgr.recreate_session(mgr.create_session("x@a.org", "a", "lead", "o").make_token(asserter), "o", asserter)
    assert session_ledger.check_command(command_conn(mgr, hci, stranger, "x@a.org")) == session_ledger.ended_message()
    assert {d.get(ProtoKey.TYPE) for d in login.buffer.data} == {ProtoKey.TOKEN}
