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
"""How many logins one account and one admin connection may make, refused at once beyond.

Upstream rate-limits nothing at login. Each ``_cert_login`` verifies a certificate chain
and a signature, signs a session token with the server's key and creates a session, in a
thread of the pool that carries every message the server parent receives (heartbeats,
task traffic, other admins' commands). One account sending logins by the thousand, at
once or in a loop, with good or bad credentials, keeps those threads and the CPU busy.

So every login is admitted here first, before any of that work, and refused at once (no
wait, no sleep: a refusal costs a dictionary look-up) when, within the last
admin_login_window seconds:

- the account or the connection made admin_login_rate_limit logins, or
- the account or the connection had admin_login_failure_limit failed logins, or
- admin_login_concurrency logins of the account are being checked at this moment.

The account is the one the connection authenticated as (login_binding), so nobody can
lock another account out by failing logins in its name: those failures count for the
sender. The connection is the admin client's cell. Sessions beyond
admin_session_user_limit are still trimmed as before (session_admission): this bounds the
rate, not the sessions an account holds.

A refusal says which bound, what it counts and when to retry, in upstream's login reply
shape (``REJECT: AUTH_LOGIN_LIMITED: ...``, shown by every console), and is audited; under
a flood only the first AUDITED_PER_WINDOW refusals of an account or connection per window
are written one by one, the others are counted and the count is written once.
"""

import math
import threading
import time
from collections import deque
from typing import Optional

from nvflare.fuel.hci.server.login_settings import (
    ADMIN_LOGIN_CONCURRENCY,
    ADMIN_LOGIN_FAILURE_LIMIT,
    ADMIN_LOGIN_RATE_LIMIT,
    LoginLimits,
    login_limits,
)
from nvflare.fuel.sec.audit import AuditService

REJECT_LIMITED = "AUTH_LOGIN_LIMITED"
AUDITED_PER_WINDOW = 10
# A login whose handler raised never reaches post_command; its slot is dropped after this.
CHECKING_TTL = 30.0
# Tables are swept of keys with nothing in the window when they grow past this.
SWEEP_AT = 4096

_lock = threading.Lock()
_limits: Optional[LoginLimits] = None
_logins = {}  # key -> deque of login times (at most the rate limit), oldest first
_failures = {}  # key -> deque of failure times (at most the failure limit)
_checking = {}  # account -> [start times of its logins being checked]
_audit = {}  # key -> [window start, written, counted]


def configure(limits: Optional[LoginLimits] = None) -> LoginLimits:
    """Read (and validate) the settings once, when the admin server starts; reset the counts."""
    global _limits
    limits = limits or login_limits()
    with _lock:
        _limits = limits
        for table in (_logins, _failures, _checking, _audit):
            table.clear()
    return limits


def _current() -> LoginLimits:
    return _limits or configure()


def _who(key: tuple) -> str:
    kind, name = key
    return f"of the account {name}" if kind == "account" else f"from the admin connection {name}"


def _retry(oldest: float, window: float, now: float) -> int:
    return max(1, math.ceil(oldest + window - now))


def rate_message(key: tuple, count: int, window: float, wait: int) -> str:
    return (
        f"REJECT: {REJECT_LIMITED}: too many logins {_who(key)} ({count} in the last {window:g} s, "
        f"{ADMIN_LOGIN_RATE_LIMIT} = {count}); try again in {wait} s"
    )


def failure_message(key: tuple, count: int, window: float, wait: int) -> str:
    return (
        f"REJECT: {REJECT_LIMITED}: too many failed logins {_who(key)} ({count} in the last {window:g} s, "
        f"{ADMIN_LOGIN_FAILURE_LIMIT} = {count}); try again in {wait} s"
    )


def checking_message(account: str, count: int) -> str:
    return (
        f"REJECT: {REJECT_LIMITED}: {count} logins of the account {account} are being checked right now "
        f"({ADMIN_LOGIN_CONCURRENCY} = {count}); try again in a second"
    )


def _in_window(times: deque, window: float, now: float) -> deque:
    while times and now - times[0] >= window:
        times.popleft()
    return times


def _sweep(table: dict, window: float, now: float):
    if len(table) > SWEEP_AT:
        for key in [k for k, times in table.items() if not _in_window(times, window, now)]:
            del table[key]


def admit(account: str, peer: str, now: Optional[float] = None) -> Optional[str]:
    """Before a login is checked: None (the login is counted and holds a checking slot), or the refusal."""
    limits = _current()
    now = time.time() if now is None else now
    keys = (("account", account), ("connection", peer))
    with _lock:
        for key in keys:
            failures = _in_window(_failures.get(key, deque()), limits.window, now)
            if len(failures) >= limits.failures:
                return failure_message(key, limits.failures, limits.window, _retry(failures[0], limits.window, now))
            logins = _in_window(_logins.get(key, deque()), limits.window, now)
            if len(logins) >= limits.logins:
                return rate_message(key, limits.logins, limits.window, _retry(logins[0], limits.window, now))
        checking = [t for t in _checking.get(account, []) if now - t < CHECKING_TTL]
        if len(checking) >= limits.concurrent:
            _checking[account] = checking
            return checking_message(account, limits.concurrent)
        _checking[account] = checking + [now]
        for key in keys:
            _logins.setdefault(key, deque(maxlen=limits.logins)).append(now)
        _sweep(_logins, limits.window, now)
    return None


def finished(account: str, peer: str, ok: bool, now: Optional[float] = None):
    """After an admitted login: free its checking slot; a failed one counts against both keys."""
    limits = _current()
    now = time.time() if now is None else now
    with _lock:
        checking = _checking.get(account)
        if checking:
            checking.pop(0)
            if not checking:
                del _checking[account]
        if not ok:
            for key in (("account", account), ("connection", peer)):
                _failures.setdefault(key, deque(maxlen=limits.failures)).append(now)
            _sweep(_failures, limits.window, now)


def audit_refusal(user: str, action: str, reason: str, peer: str, now: Optional[float] = None):
    """Audit a refused login; past AUDITED_PER_WINDOW per window for this user and connection, count instead."""
    limits = _current()
    now = time.time() if now is None else now
    key = (user, peer)
    with _lock:
        record = _audit.get(key)
        earlier = None
        if record is None or now - record[0] >= limits.window:
            if record is not None and record[2]:
                earlier = record
            record = _audit[key] = [now, 0, 0]
            if len(_audit) > SWEEP_AT:
                for k in [k for k, r in _audit.items() if now - r[0] >= limits.window]:
                    del _audit[k]
                _audit[key] = record
        write = record[1] < AUDITED_PER_WINDOW
        record[1 if write else 2] += 1
        last_written = record[1] == AUDITED_PER_WINDOW and write
    if earlier is not None:
        AuditService.add_event(
            user=user,
            action=action,
            msg=f" REFUSED: {earlier[2]} more refused logins from {peer} in the {limits.window:g} s from "
            f"{time.strftime('%H:%M:%S', time.localtime(earlier[0]))} were counted, not written one by one",
        )
    if write:
        note = (
            f" (further refusals from {peer} in the next {limits.window:g} s are counted, not written one by one)"
            if last_written
            else ""
        )
        AuditService.add_event(user=user, action=action, msg=f" REFUSED: {reason}{note}")
