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
"""Issue 11 §3 and §4: what admins' downloads may hold on the server is bounded, whatever
they send, on a real system whose server parent may open only 512 file descriptors.

The system of this module sets small limits so they are reached quickly:
admin_download_session_limit=4, admin_download_user_limit=6, admin_download_server_limit=10,
admin_download_response_timeout=4 (s), admin_download_timeout=600 (s), admin_session_user_limit=4,
admin_download_server_reserve=0; its
authorization.json grants leads download_job_components on their own jobs. The attacks are
the ones the security review reproduced: a flood of raw download commands from one
account (it exhausted 512 descriptors in 6 s and stopped job scheduling), more sessions
of one account to get around a per-session bound (it filled the server limit and locked
every other admin out of downloads), 60 GETs of one transfer that never read (+200 MiB
server RSS), a reader that stops, and a certificate that only shares the admin's name.

Behaviour test (with test_download_component_authz) of
admin-server-audit-refused-commands-and-sweep-stale-transfer-folders.patch: without it no
download limit applies and no login certificate is recorded (no direct route is offered).
"""

import contextlib
import hashlib
import itertools
import json
import os
import re
import socket
import ssl
import time
from pathlib import Path

import psutil
import pytest
from downloads import wait_until
from flare_system import PROJECT_ADMIN, FlareSystem
from job_components import LEAD, ORG_ADMIN, JobStore, sha256, write_numpy_job

from nvflare.fuel.f3.drivers.direct_download_route import BUSY, ROUTE, TRANSFER_HEADER
from nvflare.fuel.flare_api.api_spec import AuthorizationError
from nvflare.fuel.hci.client.component_direct_reader import DirectUnavailable, direct_endpoint, read_direct
from nvflare.fuel.hci.client.component_range_reader import RangeSource
from nvflare.fuel.hci.job_component_defs import RANGE_TRANSFER, TRANSFER_ID
from nvflare.fuel.hci.server.download_admission import server_limit_message, session_limit_message, user_limit_message
from nvflare.fuel.hci.server.session_admission import ended_message

pytestmark = pytest.mark.system

MIB = 1024 * 1024
SESSION_LIMIT = 4
USER_LIMIT = 6
SESSIONS_PER_USER = 4
SERVER_LIMIT = 10
RESPONSE_TIMEOUT = 4
IDLE_TIMEOUT = 600
NOFILE = 512
SIZE = 48 * MIB + 77  # more than loopback's socket buffers hold, so a reader that stops stalls the response
FLOOD = 600


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    """(system, job id with MODEL_big) on a system with small download limits and 512 fds.

    The job is the lead's: the lead (the flooder) and its org's admin may download it."""
    root = tmp_path_factory.mktemp("bounded")
    system = FlareSystem(root, n_clients=1)
    try:
        system.prepare()
        system.set_server_settings(
            admin_download_session_limit=SESSION_LIMIT,
            admin_download_user_limit=USER_LIMIT,
            admin_session_user_limit=SESSIONS_PER_USER,
            admin_download_server_limit=SERVER_LIMIT,
            admin_download_response_timeout=RESPONSE_TIMEOUT,
            admin_download_timeout=IDLE_TIMEOUT,
            # the server limit alone; its reserve for accounts holding none: test_download_flood
            admin_download_server_reserve=0,
        )
        # the site's own policy: leads may download the sites' components of their own jobs
        local = system.server_dir / "local"
        policy = json.loads((local / "authorization.json.default").read_text())
        policy["permissions"]["lead"]["download_job_components"] = "n:submitter"
        (local / "authorization.json").write_text(json.dumps(policy, indent=2))
        system.start()
        # what the review did: a server whose parent may hold 512 descriptors
        server = system.server_parent()
        server.rlimit(psutil.RLIMIT_NOFILE, (NOFILE, NOFILE))
        job_id, meta = system.submit_and_wait(write_numpy_job(root / "job", n_clients=1), user=LEAD)
        assert meta["status"] == "FINISHED:COMPLETED", meta
        JobStore(system.jobs_storage).put(job_id, "MODEL_big", os.urandom(SIZE))
        JobStore(system.jobs_storage).put(job_id, "LOG_site-1", b"site-1 log", record=False)
        yield system, job_id
    finally:
        system.stop()


def execute(sess, command: str) -> dict:
    """A raw server command, as an attacker sends it (no client-side handler)."""
    return sess.api.server_execute(command)


def refusal(result: dict) -> str:
    """The error text the server sent back."""
    return "\n".join(d["data"] for d in result.get("data") or [] if d.get("type") == "error")


def is_open(result: dict) -> bool:
    return (result.get("meta") or {}).get("status") == "ok"


def open_component(sess, job_id: str) -> dict:
    result = execute(sess, f"download_job_component {job_id} MODEL_big")
    assert is_open(result), result
    return result["meta"][RANGE_TRANSFER]


def held_files(system) -> list:
    """Files the server parent holds open inside the job store or its transfer folders."""
    roots = (str(system.jobs_storage), str(system.server_transfer_dir))
    return [f.path for f in system.server_parent().open_files() if f.path.startswith(roots)]


def audit_refusals(system, user: str, text: str) -> int:
    return sum(1 for line in system.audit_log.read_text().splitlines() if f"[U:{user}]" in line and text in line)


def test_flood_from_one_account_is_bounded(bounded, tmp_path, reliability):
    system, job_id = bounded
    server = system.server_parent()
    assert server.rlimit(psutil.RLIMIT_NOFILE) == (NOFILE, NOFILE)
    # both download commands a lead may run on their own job (download_job_components is
    # project_admin's: refused by authorization before any limit)
    commands = itertools.cycle([f"download_job_component {job_id} MODEL_big", f"download_job {job_id}"])
    fds_before = server.num_fds()
    expected = session_limit_message(SESSION_LIMIT, IDLE_TIMEOUT)
    with system.session(PROJECT_ADMIN) as sess:  # a job that trains through the flood
        running = sess.submit_job(str(write_numpy_job(tmp_path / "running", n_clients=1, train_seconds=15)))
    with system.session(LEAD) as flooder:
        started = time.time()
        results = [execute(flooder, next(commands)) for _ in range(FLOOD)]
        elapsed = time.time() - started
        opened = [r for r in results if is_open(r)]
        refused = [refusal(r) for r in results if not is_open(r)]
        assert len(opened) == SESSION_LIMIT, opened
        assert set(refused) == {expected}, set(refused)
        # the offers hold no descriptor: nothing of the store or the transfers is open
        assert held_files(system) == []
        assert server.num_fds() - fds_before < 16, (fds_before, server.num_fds())

        # other admins work: a download by another account, and a new job is scheduled and runs
        with system.session(ORG_ADMIN) as other:
            path = other.download_job_component(job_id, "MODEL_big", str(tmp_path / "other"))
        assert sha256(path) == sha256(system.job_store_dir(job_id) / "MODEL_big")
        job2, meta = system.submit_and_wait(write_numpy_job(tmp_path / "job2", n_clients=1), timeout=240)
        assert meta["status"] == "FINISHED:COMPLETED", meta
        with system.session(PROJECT_ADMIN) as sess:
            sess.wait_for_job(running, timeout=240, poll_interval=0.5)
            assert sess.get_job_meta(running)["status"] == "FINISHED:COMPLETED"
        # the flooder stays refused until its downloads end
        assert refusal(execute(flooder, f"download_job_component {job_id} MODEL_big")) == expected
    # its logout released them: the same account downloads again
    with system.session(LEAD) as again:
        path = again.download_job_component(job_id, "MODEL_big", str(tmp_path / "again"))
    assert sha256(path) == sha256(system.job_store_dir(job_id) / "MODEL_big")
    log = (system.server_dir / "log.txt").read_text(errors="replace")
    assert "Too many open files" not in log
    refused_lines = audit_refusals(system, LEAD, "REFUSED: download refused: this admin session already has")
    assert refused_lines >= FLOOD - SESSION_LIMIT, refused_lines
    reliability.record(
        "12b",
        f"{SESSION_LIMIT} downloads opened (admin_download_session_limit={SESSION_LIMIT}), every other command "
        f"refused and audited: `{session_limit_message(SESSION_LIMIT, IDLE_TIMEOUT)}`; no store or transfer file "
        "held open by the offers, server descriptors +<16; a job running through the flood and a job submitted after "
        "it both end FINISHED:COMPLETED, another admin downloads the 48 MiB model (sha256 verified); no `Too many "
        "open files`; after "
        "logout the account downloads again",
    )
    assert elapsed < 120, elapsed


def open_all(sess, job_id: str, n: int) -> tuple:
    """Send ``n`` raw download_job_component commands: (transfers opened, refusal texts)."""
    opened, refused = [], []
    for _ in range(n):
        result = execute(sess, f"download_job_component {job_id} MODEL_big")
        if is_open(result):
            opened.append(result["meta"][RANGE_TRANSFER])
        else:
            refused.append(refusal(result))
    return opened, refused


def test_one_account_meets_its_user_limit(bounded, tmp_path, reliability):
    """One account logs in again and again: it gets USER_LIMIT downloads in all, whatever its
    sessions; other accounts keep downloading; ended transfers and logouts free the account."""
    system, job_id = bounded
    expected = user_limit_message(LEAD, USER_LIMIT, IDLE_TIMEOUT)
    audited = f"REFUSED: download refused: the account {LEAD} already has {USER_LIMIT} downloads open"  # cut at 200
    audited_before = audit_refusals(system, LEAD, audited)
    with system.session(LEAD) as b, system.session(LEAD) as c:
        with system.session(LEAD) as a:
            opened_a, refused_a = open_all(a, job_id, SESSION_LIMIT)  # the session's own limit: 4
            opened_b, refused_b = open_all(b, job_id, SESSION_LIMIT)  # 2 more reach the account's 6
            opened_c, refused_c = open_all(c, job_id, SESSION_LIMIT)  # none: the account is full
            assert (len(opened_a), len(opened_b), len(opened_c)) == (SESSION_LIMIT, USER_LIMIT - SESSION_LIMIT, 0)
            assert refused_a == []
            assert set(refused_b + refused_c) == {expected}, set(refused_b + refused_c)
            # the refusal names the account and the setting, and is audited
            assert expected == (
                f"download refused: the account {LEAD} already has {USER_LIMIT} downloads open across its admin "
                f"sessions (admin_download_user_limit = {USER_LIMIT}). Finish or cancel them first: a download is "
                f"released when all its files are received, when it has been idle for {IDLE_TIMEOUT} s "
                "(admin_download_timeout), or when its session logs out"
            )
            refused_now = len(refused_b) + len(refused_c)
            wait_until(lambda: audit_refusals(system, LEAD, audited) - audited_before >= refused_now, timeout=10)
            # through the client, too
            with pytest.raises(Exception) as e:
                c.download_job_component(job_id, "MODEL_big", str(tmp_path / "refused"))
            assert str(e.value) == f"error: {expected}"

            # another account is not held back by the full one
            with system.session(ORG_ADMIN) as other:
                path = other.download_job_component(job_id, "MODEL_big", str(tmp_path / "other"))
            assert sha256(path) == sha256(system.job_store_dir(job_id) / "MODEL_big")

            # an ended transfer frees one download for the account, in any of its sessions
            RangeSource(a.api.cell, opened_a.pop(), timeout=10).end("ok")
            path = c.download_job_component(job_id, "MODEL_big", str(tmp_path / "freed"))
            assert sha256(path) == sha256(system.job_store_dir(job_id) / "MODEL_big")
            # ... and that completed download is released as well: exactly one more opens
            opened, refused = open_all(c, job_id, 2)
            assert (len(opened), refused) == (1, [expected])
            opened_c += opened
        # a's logout releases its 3 downloads for the account's other sessions: c opens 3 more,
        # then meets its own session limit (1 + 3 = 4)
        opened, refused = open_all(c, job_id, SESSION_LIMIT)
        assert len(opened) == USER_LIMIT - len(opened_b) - len(opened_c) == 3, (opened, refused)
        assert refused == [session_limit_message(SESSION_LIMIT, IDLE_TIMEOUT)]
    reliability.record(
        "12c",
        f"the account gets {USER_LIMIT} downloads across all its sessions (admin_download_user_limit={USER_LIMIT}; "
        f"{SESSION_LIMIT} + {USER_LIMIT - SESSION_LIMIT} + 0 in three sessions); the rest are refused and audited: "
        f"`{user_limit_message('<account>', USER_LIMIT, IDLE_TIMEOUT)}`; meanwhile another account downloads the "
        "48 MiB model (sha256 verified); an ended transfer or a logout frees the account's downloads at once",
    )


def test_several_accounts_meet_the_server_limit(bounded, tmp_path, reliability):
    system, job_id = bounded
    expected = server_limit_message(SERVER_LIMIT, IDLE_TIMEOUT)
    with contextlib.ExitStack() as stack:
        lead_a, lead_b, org_admin, org_admin_2 = (
            stack.enter_context(system.session(user)) for user in (LEAD, LEAD, ORG_ADMIN, ORG_ADMIN)
        )
        opened = [len(open_all(s, job_id, n)[0]) for s, n in ((lead_a, 4), (lead_b, 2), (org_admin, 4))]
        assert opened == [4, 2, 4]  # 10: the server is full
        assert open_all(org_admin_2, job_id, 3) == ([], [expected] * 3)
        with system.session(PROJECT_ADMIN) as other:  # while the server is full, nobody gets more
            with pytest.raises(Exception) as e:
                other.download_job_component(job_id, "MODEL_big", str(tmp_path / "full"))
            assert str(e.value) == f"error: {expected}"
            assert other.get_system_info().server_info  # everything else works
    with system.session(PROJECT_ADMIN) as other:
        path = other.download_job_component(job_id, "MODEL_big", str(tmp_path / "after"))
    assert sha256(path) == sha256(system.job_store_dir(job_id) / "MODEL_big")
    reliability.record(
        "12g",
        f"the server holds {SERVER_LIMIT} downloads at most (admin_download_server_limit={SERVER_LIMIT}); more are "
        f"refused for every account with `{expected}`; other commands keep working; when the sessions end their "
        "downloads are released and the next download succeeds",
    )


def sessions_of(system, user: str) -> int:
    """The admin sessions the server holds for ``user`` (upstream's list_sessions)."""
    with system.session(PROJECT_ADMIN) as sess:
        result = sess.api.server_execute("list_sessions")
    tables = [d for d in result.get("data") or [] if d.get("type") == "table"]
    return sum(1 for t in tables for r in t.get("rows") or [] if r and r[0] == user)


def test_one_account_cannot_pile_up_sessions(bounded, tmp_path, reliability):
    """Logins without logout: the account keeps admin_session_user_limit sessions, the least
    recently used are ended (and their clients told why); the newest and other accounts work."""
    system, job_id = bounded
    expected = ended_message(LEAD, SESSIONS_PER_USER)
    with contextlib.ExitStack() as stack:
        sessions = [stack.enter_context(system.session(LEAD)) for _ in range(SESSIONS_PER_USER + 2)]
        wait_until(lambda: all(s.api.session_expired_reason == expected for s in sessions[:2]), timeout=15)
        assert [s.api.session_expired_reason for s in sessions[2:]] == [None] * SESSIONS_PER_USER
        assert sessions_of(system, LEAD) == SESSIONS_PER_USER
        for sess in sessions[2:]:  # the kept ones work
            assert sess.get_system_info().server_info
        path = sessions[-1].download_job_component(job_id, "MODEL_big", str(tmp_path / "newest"))
        assert sha256(path) == sha256(system.job_store_dir(job_id) / "MODEL_big")
        with system.session(ORG_ADMIN) as other:  # another account is left alone
            assert other.get_system_info().server_info
        assert sessions_of(system, LEAD) == SESSIONS_PER_USER
    ended = f"ended 1 idle admin session(s) of {LEAD}: more than {SESSIONS_PER_USER} (admin_session_user_limit)"
    assert server_log(system).count(ended) >= 2
    reliability.record(
        "12h",
        f"the account keeps {SESSIONS_PER_USER} sessions (admin_session_user_limit={SESSIONS_PER_USER}); each login "
        f"beyond ends its least recently used one, whose client is told `{ended_message('<account>', SESSIONS_PER_USER)}`"
        "; the newest session downloads, other accounts are untouched",
    )


def _tls_context(kit: Path, cert: Path = None, key: Path = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(kit / "startup" / "rootCA.pem"))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(cert or kit / "startup" / "client.crt"), str(key or kit / "startup" / "client.key"))
    return ctx


def stalled_get(endpoint, transfer_id: str) -> ssl.SSLSocket:
    """A GET of the transfer whose reader never reads the body (small receive buffer)."""
    host, port, ctx = endpoint
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    raw.settimeout(30)
    raw.connect((host, port))
    sock = ctx.wrap_socket(raw, server_hostname=host)
    sock.sendall(f"GET {ROUTE} HTTP/1.1\r\nHost: {host}\r\n{TRANSFER_HEADER}: {transfer_id}\r\n\r\n".encode())
    return sock


def status_of(sock: ssl.SSLSocket) -> int:
    head = sock.recv(64)
    return int(head.split(b" ", 2)[1])


def received_until_closed(sock: ssl.SSLSocket, timeout: float = 30) -> int:
    """Read what arrives until the server's close (or ``timeout``); the byte count.

    Only call it once the server should have closed the response: reading is what a
    stalled reader does not do."""
    got, deadline = 0, time.time() + timeout
    sock.settimeout(timeout)
    try:
        while time.time() < deadline:
            chunk = sock.recv(1024 * 1024)
            if not chunk:
                break
            got += len(chunk)
    except (ConnectionError, ssl.SSLError, TimeoutError):
        pass
    return got


TIMEOUT_LINE = (
    r"direct response for transfer {} closed at \d+ of {} bytes: the admin took no bytes for {} s "
    r"\(admin_download_response_timeout\)"
)


def closed_by_timeout(system, transfer_id: str) -> bool:
    return re.search(TIMEOUT_LINE.format(transfer_id, SIZE, RESPONSE_TIMEOUT), server_log(system)) is not None


def server_log(system) -> str:
    return (system.server_dir / "log.txt").read_text(errors="replace")


def test_many_readers_of_one_transfer(bounded, reliability):
    system, job_id = bounded
    server = system.server_parent()
    data_sha = sha256(system.job_store_dir(job_id) / "MODEL_big")
    with system.session() as sess:
        transfer = open_component(sess, job_id)
        endpoint = direct_endpoint(sess.api.cell)
        rss_before = server.memory_info().rss
        sockets = [stalled_get(endpoint, transfer[TRANSFER_ID]) for _ in range(60)]
        statuses = [status_of(s) for s in sockets]
        assert sorted(statuses) == [200] + [409] * 59, statuses
        streaming = sockets[statuses.index(200)]
        with pytest.raises(DirectUnavailable) as e:
            read_direct(endpoint, ROUTE, transfer[TRANSFER_ID], SIZE, lambda b: None, timeout=10)
        assert str(e.value) == f"the server refused it (HTTP 409: {BUSY})"
        time.sleep(1)
        grown = server.memory_info().rss - rss_before
        assert grown < 32 * MIB, grown / MIB
        for s in sockets:
            if s is not streaming:
                s.close()
        # the one stalled response is closed after admin_download_response_timeout
        wait_until(lambda: closed_by_timeout(system, transfer[TRANSFER_ID]), timeout=RESPONSE_TIMEOUT + 30)
        assert received_until_closed(streaming) < SIZE  # cut: the rest never came
        streaming.close()
        assert held_files(system) == []
        # released: the transfer serves a whole response again, and the server kept no memory
        digest = hashlib.sha256()
        read_direct(endpoint, ROUTE, transfer[TRANSFER_ID], SIZE, digest.update, timeout=10)
        assert digest.hexdigest() == data_sha
        RangeSource(sess.api.cell, transfer, timeout=10).end("ok")
    after = server.memory_info().rss - rss_before
    assert after < 32 * MIB, after / MIB
    reliability.record(
        "12d",
        f"one response per transfer: the first GET streams, the other 59 get `HTTP 409: {BUSY}`; server RSS +<32 MiB "
        f"(was ~+200 MiB); the stalled response is closed after admin_download_response_timeout "
        f"({RESPONSE_TIMEOUT} s here) and the transfer then serves a whole response with the recorded sha256",
    )


def test_stalled_reader_and_ended_transfer_close_the_response(bounded, reliability):
    system, job_id = bounded
    with system.session() as sess:
        transfer = open_component(sess, job_id)
        endpoint = direct_endpoint(sess.api.cell)
        sock = stalled_get(endpoint, transfer[TRANSFER_ID])
        assert status_of(sock) == 200
        wait_until(lambda: len(held_files(system)) == 1, timeout=10)
        (held,) = held_files(system)
        assert os.path.samefile(held, system.job_store_dir(job_id) / "MODEL_big")
        stalled = time.time()
        took = wait_until(lambda: closed_by_timeout(system, transfer[TRANSFER_ID]), timeout=RESPONSE_TIMEOUT + 30)
        assert time.time() - stalled >= RESPONSE_TIMEOUT - 1, took
        assert received_until_closed(sock) < SIZE
        sock.close()
        wait_until(lambda: held_files(system) == [], timeout=10)

        # a response under way is cut as soon as its transfer ends (here: the session logs out)
        other = open_component(sess, job_id)
        sock = stalled_get(endpoint, other[TRANSFER_ID])
        assert status_of(sock) == 200
    wait_until(lambda: f"range transfer {other[TRANSFER_ID]} ended (cancelled)" in server_log(system), timeout=10)
    assert received_until_closed(sock) < SIZE  # cut by the logout, not drained
    sock.close()
    assert not closed_by_timeout(system, other[TRANSFER_ID])
    wait_until(lambda: held_files(system) == [], timeout=10)
    reliability.record(
        "12e",
        f"the stalled response is closed {RESPONSE_TIMEOUT} s after its last progress (server log: `direct response "
        f"for transfer <id> closed at <n> of <size> bytes: the admin took no bytes for {RESPONSE_TIMEOUT} s "
        "(admin_download_response_timeout)`) and its descriptor released; a logout cuts a stalled response at once "
        "(transfer `ended (cancelled)`), before the timeout",
    )


def _forged_certificate(system, user: str, folder: Path) -> tuple:
    """A certificate with ``user``'s CN (and role/org), signed by the project's root CA."""
    import datetime
    import json

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    state = json.loads((system.prod.parent / "state" / "cert.json").read_text())
    ca_key = serialization.load_pem_private_key(state["root_pri_key"].encode(), password=None)
    ca_cert = x509.load_pem_x509_certificate(state["root_cert"].encode())
    real = x509.load_pem_x509_certificate((system.kit(user) / "startup" / "client.crt").read_bytes())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(real.subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = folder / "forged.crt", folder / "forged.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    real_fingerprint = hashlib.sha256(real.public_bytes(serialization.Encoding.DER)).hexdigest()
    return cert_file, key_file, fingerprint, real_fingerprint


def test_transfer_is_bound_to_the_login_certificate(bounded, tmp_path, reliability):
    system, job_id = bounded
    cert, key, forged_fp, real_fp = _forged_certificate(system, PROJECT_ADMIN, tmp_path)
    with system.session() as sess:
        transfer = open_component(sess, job_id)
        host, port, _ = direct_endpoint(sess.api.cell)
        forged = (host, port, _tls_context(system.kit(PROJECT_ADMIN), cert, key))
        with pytest.raises(DirectUnavailable) as e:
            read_direct(forged, ROUTE, transfer[TRANSFER_ID], SIZE, lambda b: None, timeout=10)
        expected = (
            f"this transfer belongs to the certificate {PROJECT_ADMIN} logged in with (sha256 {real_fp[:16]}...), "
            f"not to this one (sha256 {forged_fp[:16]}...)"
        )
        assert str(e.value) == f"the server refused it (HTTP 403: {expected})"
        digest = hashlib.sha256()  # the session's own certificate still gets it
        real = (host, port, _tls_context(system.kit(PROJECT_ADMIN)))
        read_direct(real, ROUTE, transfer[TRANSFER_ID], SIZE, digest.update, timeout=10)
        assert digest.hexdigest() == sha256(system.job_store_dir(job_id) / "MODEL_big")
        RangeSource(sess.api.cell, transfer, timeout=10).end("ok")
    reliability.record(
        "12f",
        f"refused: `HTTP 403: this transfer belongs to the certificate {PROJECT_ADMIN} logged in with (sha256 "
        "<16 hex>...), not to this one (sha256 <16 hex>...)`; the certificate the session logged in with gets the "
        "whole file",
    )


def test_an_upstream_client_leaves_no_offer_behind(bounded, tmp_path):
    """download_job pulled the upstream way (DownloadService only, the direct offer ignored):
    when DownloadService's transaction is done, the offer's transfers are released too, and
    they never held a descriptor."""
    from nvflare.fuel.f3.streaming.file_downloader import download_file
    from nvflare.fuel.hci.job_component_defs import DIRECT_FILES
    from nvflare.fuel.hci.proto import MetaKey

    system, job_id = bounded
    with system.session(LEAD) as sess:
        result = execute(sess, f"download_job {job_id}")
        assert is_open(result), result
        meta = result["meta"]
        offered = [t[TRANSFER_ID] for t in meta[DIRECT_FILES].values()]
        assert len(offered) == len(meta[MetaKey.FILES]) >= 3
        assert held_files(system) == []
        for rel_path, ref_id in meta[MetaKey.FILES]:
            error, path = download_file(meta[MetaKey.SOURCE_FQCN], ref_id, 10.0, sess.api.cell, location=str(tmp_path))
            assert error is None, error
        released = "range transfer {} ended (released: its download's files are gone)"
        wait_until(lambda: all(released.format(t) in server_log(system) for t in offered), timeout=30)
        # the session's downloads are free again: SESSION_LIMIT new ones open
        opened = [execute(sess, f"download_job_component {job_id} MODEL_big") for _ in range(SESSION_LIMIT)]
        assert all(is_open(r) for r in opened), [refusal(r) for r in opened]


def test_site_components_follow_the_sites_policy(bounded, tmp_path):
    """This server's policy grants leads download_job_components (n:submitter): the lead gets
    the site's log of their job; the org admin, who may download its models, does not."""
    system, job_id = bounded
    with system.session(LEAD) as lead:
        path = lead.download_job_component(job_id, "LOG_site-1", str(tmp_path / "lead"))
        assert Path(path).read_bytes() == b"site-1 log"
    with system.session(ORG_ADMIN) as org_admin:
        assert sha256(org_admin.download_job_component(job_id, "MODEL_big", str(tmp_path / "oa"))) == sha256(
            system.job_store_dir(job_id) / "MODEL_big"
        )
        with pytest.raises(AuthorizationError) as e:
            org_admin.download_job_component(job_id, "LOG_site-1", str(tmp_path / "oa"))
        assert str(e.value) == (  # the FLARE API's wording around the server's reason
            f"user not authorized for the action 'download_job_component {job_id} LOG_site-1 {tmp_path / 'oa'}: "
            f"user '{ORG_ADMIN}' is not authorized for 'download_job_components''"
        )


def test_bad_user_limit_stops_the_server_at_startup(bounded):
    """Runs last in this module: restarts the server with admin_download_user_limit=0."""
    system, _ = bounded
    system.stop()
    system.restart_server_expecting(
        "ConfigError: invalid admin_download_user_limit (server local/resources.json, --set "
        "admin_download_user_limit=..., or env NVFLARE_ADMIN_DOWNLOAD_USER_LIMIT): 0 must be a whole number from 1 "
        "to 100000",
        env={"NVFLARE_ADMIN_DOWNLOAD_USER_LIMIT": "0"},
    )
