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
"""Issue 22 §6 and issue 21 §4 on a real provisioned system: the admin session layer.

Upstream 2.9.0 accepted a login's headers again from any admin connection (the signature
is over the user name and an empty nonce), recreated a logged-out session from its token
(from any connection, another account's included), ran ``list_sessions`` for anyone, and
bounded no login. Here, with upstream's own 2.9.0 client where it matters:

- a login an upstream client sent, replayed from another account's connection and on its
  own account's connection: refused with the exact messages;
- a token after logout: refused on its own and on another account's connection; a live
  token from another account's connection: refused, its owner unaffected;
- ``list_sessions``: project_admin only under the default policy;
- a login flood (good and bad credentials, sequential then many at once): refused after
  the bound with the exact message, at once, while project_admin's ``list_jobs`` stays
  fast and another account logs in; after the advertised wait the account logs in again;
- a bad login setting stops the server at startup with the exact message (the other
  settings' messages, model_backfill_limit's included, are checked in
  test_admin_sessions_units.py; they are read at the same point of the server's start).

Behaviour test (with test_download_bounds) of
admin-server-audit-refused-commands-and-sweep-stale-transfer-folders.patch: the checks
run in AuditedAuthzFilter, which that patch installs; without it none of them applies.

The module's system sets small login bounds (window WINDOW s, RATE logins, FAILURES failed
ones) so the bounds are reached in seconds; the defaults are checked in
test_admin_sessions_units.py.
"""

import base64
import json
import re
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from admin_console import AdminConsole
from flare_system import PROJECT_ADMIN, FlareSystem
from job_components import (
    LEAD,
    MEMBER,
    ORG_ADMIN,
    OTHER_LEAD,
    OTHER_ORG_ADMIN,
    OTHER_ORG_LEAD,
    OTHER_ORG_MEMBER,
    add_role_users,
)
from logins import login_headers, send_login, signer
from upstream_flare import upstream_nvflare

from nvflare.fuel.flare_api.api_spec import AuthenticationError
from nvflare.fuel.hci.server import login_limits, session_ledger
from nvflare.fuel.hci.server.login_binding import identity_message, replay_message

pytestmark = pytest.mark.system

WINDOW = 15
RATE = 30
FAILURES = 5
FLOOD_SECONDS = 5
SUPPORT = Path(__file__).resolve().parents[1] / "support"


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    system = FlareSystem(tmp_path_factory.mktemp("sessions"), n_clients=1, project_edit=add_role_users)
    try:
        system.prepare()
        system.set_server_settings(
            admin_login_window=WINDOW, admin_login_rate_limit=RATE, admin_login_failure_limit=FAILURES
        )
        system.start()
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def upstream_python(upstream_wheel) -> str:
    return str(Path(upstream_nvflare(upstream_wheel)).parent / "python")


@pytest.fixture(scope="module")
def upstream_report(system, upstream_python, tmp_path_factory) -> dict:
    """What upstream 2.9.0's own FLARE API saw logging in as LEAD (tests/support/upstream_login_client.py)."""
    out = tmp_path_factory.mktemp("upstream") / "report.json"
    env = {k: v for k, v in system.env.items() if not k.startswith("NVFLARE_")}
    proc = subprocess.run(
        [upstream_python, str(SUPPORT / "upstream_login_client.py"), LEAD, str(system.kit(LEAD)), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    headers = report["headers"]
    headers["cert"] = base64.b64decode(headers["cert"])
    headers["signature"] = base64.b64decode(headers["signature"])
    return report


def audit_lines(system, needle: str) -> list:
    return [line for line in system.audit_log.read_text().splitlines() if needle in line]


def test_upstream_client_logs_in_and_its_token_dies_at_logout(system, upstream_python, upstream_report):
    report = upstream_report
    assert report["list_jobs"] == "APIStatus.SUCCESS", report
    assert report["logout"] == "OK", report
    # upstream 2.9.0 recreated the session from the token and answered SUCCESS
    assert report["after_logout"] == {
        "status": "APIStatus.ERROR_INACTIVE_SESSION",
        "text": session_ledger.ended_message(),
    }, report
    # ... and its real console (fl_admin of 2.9.0) logs in and works as before
    with AdminConsole(system.kit(), env=system.env, python=upstream_python) as console:
        listed = console.run("list_jobs")
    assert "Error" not in listed and "REJECT" not in console.transcript, console.transcript


def test_replayed_login_refused(system, upstream_report):
    """The login headers an upstream client really sent, sent again: never a session."""
    captured = upstream_report["headers"]
    with system.session(OTHER_ORG_LEAD) as other, system.session(LEAD) as own:
        # from another account's connection (upstream: "OK" and a session of LEAD)
        line, token, _ = send_login(other, LEAD, captured)
        assert (line, token) == (identity_message(LEAD, OTHER_ORG_LEAD), None)
        # on LEAD's own connection: the signature was used once already
        line, token, _ = send_login(own, LEAD, captured)
        assert (line, token) == (replay_message(), None)
        # a fresh signature of LEAD's own key on its own connection still works
        line, token, _ = send_login(own, LEAD, login_headers(signer(system.kit(LEAD))))
        assert line == "OK" and token
        # even a fresh, valid login of another account is refused on a connection that is not its own
        line, token, _ = send_login(own, OTHER_ORG_LEAD, login_headers(signer(system.kit(OTHER_ORG_LEAD))))
        assert (line, token) == (identity_message(OTHER_ORG_LEAD, LEAD), None)
    refused = audit_lines(system, f"[A:_cert_login {LEAD}] REFUSED: REJECT: AUTH_LOGIN_")
    assert [line.split("[U:")[1].split("]")[0] for line in refused] == [OTHER_ORG_LEAD, LEAD], refused


def test_token_after_logout_refused_on_any_connection(system):
    with system.session(MEMBER) as member, system.session(OTHER_ORG_MEMBER) as other:
        token = member.api.token
        assert member.api.server_execute("_logout")["data"] == [{"type": "string", "data": "OK"}]
        for sess in (member, other):
            own_token = sess.api.token
            sess.api.token = token
            try:
                result = sess.api.server_execute("list_jobs")
            finally:
                sess.api.token = own_token
            assert str(result["status"]) == "APIStatus.ERROR_INACTIVE_SESSION", result
            assert result["data"] == [{"type": "error", "data": session_ledger.ended_message()}]
        assert str(other.api.server_execute("list_jobs")["status"]) == "APIStatus.SUCCESS"


def test_live_token_refused_from_another_accounts_connection(system):
    with system.session(ORG_ADMIN) as owner, system.session(OTHER_ORG_ADMIN) as thief:
        stolen, own = owner.api.token, thief.api.token
        thief.api.token = stolen
        try:
            for command in ("list_jobs", "_logout"):
                result = thief.api.server_execute(command)
                assert result["data"] == [
                    {"type": "error", "data": session_ledger.foreign_message(ORG_ADMIN, OTHER_ORG_ADMIN)}
                ], result
        finally:
            thief.api.token = own
        # the owner's session was neither used nor ended
        assert str(owner.api.server_execute("list_jobs")["status"]) == "APIStatus.SUCCESS"


def test_list_sessions_needs_the_list_sessions_right(system):
    with system.session(PROJECT_ADMIN) as admin:
        table = admin.api.server_execute("list_sessions")["data"][0]["rows"]
        assert table[0] == ["USER", "ORG", "ROLE", "SESSION ID", "START", "LAST ACTIVE", "IDLE"]
        assert PROJECT_ADMIN in [row[0] for row in table[1:]]
    for user in (LEAD, MEMBER, OTHER_ORG_LEAD):
        with system.session(user) as sess:
            result = sess.api.server_execute("list_sessions")
        assert result["data"] == [
            {"type": "error", "data": f"Authorization Error: user '{user}' is not authorized for 'list_sessions'"}
        ], result
        assert audit_lines(system, f"[U:{user}][A:list_sessions] REFUSED: Authorization Error:"), user


WAIT = re.compile(r"try again in (\d+) s$")


def _rate_refusal(line: str, user: str) -> bool:
    m = WAIT.search(line)
    return bool(m) and line == login_limits.rate_message(("account", user), RATE, WINDOW, int(m.group(1)))


def test_login_flood_refused_after_the_bound_while_others_work(system):
    flooder, failer = OTHER_LEAD, OTHER_ORG_MEMBER
    good, bad = signer(system.kit(flooder)), signer(system.kit(failer))
    with system.session(PROJECT_ADMIN) as admin, system.session(flooder) as fl, system.session(failer) as fa:
        baseline = []
        for _ in range(10):
            started = time.time()
            admin.list_jobs()
            baseline.append(time.time() - started)
        # 1. one at a time: RATE logins (the session above was one) pass, the next is refused
        replies = [send_login(fl, flooder, login_headers(good)) for _ in range(RATE)]
        assert [line for line, _, _ in replies[: RATE - 1]] == ["OK"] * (RATE - 1)
        line, token, took = replies[-1]
        assert token is None and _rate_refusal(line, flooder), line
        # bad credentials: upstream's own "REJECT" FAILURES times (the session above was a good one),
        # then the bound, for good credentials too
        bad_replies = [send_login(fa, failer, login_headers(bad, signed="not my name")) for _ in range(FAILURES)]
        assert [line for line, _, _ in bad_replies] == ["REJECT"] * FAILURES
        line, token, _ = send_login(fa, failer, login_headers(bad))
        m = WAIT.search(line)
        assert m and line == login_limits.failure_message(("account", failer), FAILURES, WINDOW, int(m.group(1)))

        # 2. many at once, both accounts, while project_admin works and another account logs in
        latencies, stop = [], threading.Event()

        def watch():
            while not stop.is_set():
                started = time.time()
                admin.list_jobs()
                latencies.append(time.time() - started)
                time.sleep(0.1)

        def flood_until(end, i):
            sent = []
            while time.time() < end:
                if i % 2:
                    sent.append((flooder, send_login(fl, flooder, login_headers(good))))
                else:
                    sent.append((failer, send_login(fa, failer, login_headers(bad, signed="not my name"))))
            return sent

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with ThreadPoolExecutor(16) as pool:
                end = time.time() + FLOOD_SECONDS
                futures = [pool.submit(flood_until, end, i) for i in range(16)]
                with system.session(ORG_ADMIN) as legit:  # during the flood: a login of another account
                    assert legit.list_jobs() is not None
                legit_in_flood = time.time() < end
                flood = [sent for f in futures for sent in f.result()]
        finally:
            stop.set()
            watcher.join(30)
    assert legit_in_flood, f"the other account's login took more than {FLOOD_SECONDS} s"
    assert len(flood) > 100, len(flood)
    for i, (who, (line, token, _)) in enumerate(flood):
        assert token is None, (i, line)
        m = WAIT.search(line)
        limited = m and (
            line == login_limits.rate_message(("account", who), RATE, WINDOW, int(m.group(1)))
            or line == login_limits.failure_message(("account", who), FAILURES, WINDOW, int(m.group(1)))
        )
        assert limited, (i, line)
    took = sorted(t for _, (_, _, t) in flood)
    print(
        f"login flood: {len(flood)} refused in {FLOOD_SECONDS} s, median {statistics.median(took):.3f} s each; "
        f"list_jobs median {statistics.median(baseline):.3f} s quiet, {statistics.median(latencies):.3f} s "
        f"(max {max(latencies):.3f} s) under the flood"
    )
    assert statistics.median(took) < 0.2, took[-10:]  # refused at once
    assert statistics.median(latencies) <= max(0.5, 3 * statistics.median(baseline)), (baseline, latencies)
    assert max(latencies) < 5, latencies
    # refusals are audited, a flood's only by the first AUDITED_PER_WINDOW per window, then counted
    written = audit_lines(system, f"[U:{flooder}][A:_cert_login {flooder}] REFUSED: REJECT: AUTH_LOGIN_LIMITED")
    assert 1 <= len(written) <= 2 * login_limits.AUDITED_PER_WINDOW, len(written)
    assert any("are counted, not written one by one" in line for line in written), written[-3:]
    # the wait a refusal names is the truth: after it, the account logs in again
    last = [line for who, (line, _, _) in flood if who == flooder][-1]
    time.sleep(int(WAIT.search(last).group(1)) + 1)
    deadline = time.time() + WINDOW + 5
    while True:
        try:
            with system.session(flooder) as again:
                assert again.list_jobs() is not None
            break
        except AuthenticationError as e:
            assert _rate_refusal(f"REJECT: {login_limits.REJECT_LIMITED}: {e}", flooder), str(e)
            assert time.time() < deadline, str(e)
            time.sleep(1)


def test_a_bad_login_setting_stops_the_server_at_startup(system):
    """Runs last in this module: restarts the server with a bad admin_login_failure_limit."""
    system.stop()
    system.restart_server_expecting(
        "ConfigError: invalid admin_login_failure_limit (server local/resources.json, --set "
        "admin_login_failure_limit=..., or env NVFLARE_ADMIN_LOGIN_FAILURE_LIMIT): 0 must be a whole number "
        "from 1 to 100000",
        env={"NVFLARE_ADMIN_LOGIN_FAILURE_LIMIT": "0"},
    )
