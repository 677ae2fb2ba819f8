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
"""How many downloads an admin session, an admin account, and the whole server may have open.

Every download command (download_job, download_job_components, download_job_component)
creates a transaction folder and binds a transaction to the admin's session; it stays
open until its files are delivered, it is cancelled, it is idle for
admin_download_timeout, or the session ends. Upstream bounds none of this, so one admin
sending commands in a loop could hold the server's descriptors and disk bookkeeping
until job scheduling failed (issue 11). The session manager already knows every open
transaction (its download bindings), so the bound is checked there, before the command
creates anything: a refused command costs nothing, and its reason is audited like an
authorization refusal (audited_authz).

Sessions are free to open (each login makes one), so a per-session bound alone lets one
account log in again and again until it holds the whole server limit and every other
admin is refused. The account bound counts the downloads of all sessions with the same
user name. The name is what the session manager holds for the session: the CN of the
certificate the admin logged in with, also carried in the signed session token, so a
session the server recreated from its token after a restart still counts for its
account. The certificate fingerprint is not the key: an account re-provisioned with a
new certificate is still one account, and recreated sessions have no fingerprint on
record (session_certs); a different certificate with the same name needs the project's
root CA key, which already grants everything.

A command between admission and its binding is counted as pending, so commands that
arrive together cannot all slip under the limit; a pending entry is dropped after the
command (post_command) or, if its handler died, after PENDING_TTL seconds.

Even so four accounts (16 downloads each) could hold the whole default server limit of 64,
and keep it by reading a byte now and then (issue 21). Two bounds end that: the last
admin_download_server_reserve slots (a quarter by default) are kept for accounts that hold
no download, so a few accounts cannot take every slot; and a download has a lifetime
(admin_download_max_lifetime), after which it ends however active it is. The range server
ends its own transfers at that age (and slow ones earlier, see component_transfer_server);
``end_overdue`` ends every other binding of that age, upstream's DownloadService
transactions included, through the binding's own cancel callback.
"""

import itertools
import threading
import time
import weakref
from typing import Optional

from nvflare.apis.fl_constant import AdminCommandNames as AC
from nvflare.fuel.hci.server.download_settings import (
    ADMIN_DOWNLOAD_MAX_LIFETIME,
    ADMIN_DOWNLOAD_SERVER_LIMIT,
    ADMIN_DOWNLOAD_SERVER_RESERVE,
    ADMIN_DOWNLOAD_SESSION_LIMIT,
    ADMIN_DOWNLOAD_TIMEOUT,
    ADMIN_DOWNLOAD_USER_LIMIT,
    download_limits,
    transfer_bounds,
)
from nvflare.fuel.utils.log_utils import get_module_logger

log = get_module_logger(__name__)

DOWNLOAD_COMMANDS = frozenset({AC.DOWNLOAD_JOB, AC.DOWNLOAD_JOB_COMPONENTS, AC.DOWNLOAD_JOB_COMPONENT})
# direct_folder_offer binds "<tx_id>.direct" next to DownloadService's "<tx_id>": one download.
OFFER_SUFFIX = ".direct"
PENDING_TTL = 300.0
_SLOT = "_fork_download_slot"
# end_overdue leaves a binding this much longer than the lifetime, so that the range server,
# which sweeps every second, ends its own transfers first (with the reason their admin sees).
OVERDUE_GRACE = 5.0

_lock = threading.Lock()
_pending = {}  # slot id -> (session id, user name, time admitted)
_ids = itertools.count()
# session manager -> {(session id, binding): when end_overdue first saw it}
_first_seen = weakref.WeakKeyDictionary()


def _transactions(session_mgr) -> tuple:
    """({session id: open downloads}, {session id: user name}) from the session manager."""
    with session_mgr.sess_update_lock:
        bindings = {sid: list(txs) for sid, txs in session_mgr.downloads.items()}
        users = {sid: s.user_name for sid, s in session_mgr.sessions.items()}

    def download(tx_id: str) -> str:
        return tx_id[: -len(OFFER_SUFFIX)] if tx_id.endswith(OFFER_SUFFIX) else tx_id

    return {sid: len({download(t) for t in txs}) for sid, txs in bindings.items()}, users


def _seconds(timeout: float) -> str:
    return f"{timeout:g} s ({ADMIN_DOWNLOAD_TIMEOUT})"


def session_limit_message(limit: int, idle_timeout: float) -> str:
    return (
        f"download refused: this admin session already has {limit} downloads open "
        f"({ADMIN_DOWNLOAD_SESSION_LIMIT} = {limit}). Finish or cancel them first: a download is "
        f"released when all its files are received, when it has been idle for {_seconds(idle_timeout)}, "
        f"or when you log out"
    )


def user_limit_message(user: str, limit: int, idle_timeout: float) -> str:
    return (
        f"download refused: the account {user} already has {limit} downloads open across its admin sessions "
        f"({ADMIN_DOWNLOAD_USER_LIMIT} = {limit}). Finish or cancel them first: a download is released when all "
        f"its files are received, when it has been idle for {_seconds(idle_timeout)}, or when its session logs out"
    )


def server_limit_message(limit: int, idle_timeout: float) -> str:
    return (
        f"download refused: the server already has {limit} downloads open "
        f"({ADMIN_DOWNLOAD_SERVER_LIMIT} = {limit}). Try again when some have finished (idle ones are "
        f"released after {_seconds(idle_timeout)}), or ask the server's operator to raise "
        f"{ADMIN_DOWNLOAD_SERVER_LIMIT}"
    )


def reserve_message(user: str, held: int, open_now: int, limit: int, reserve: int, idle_timeout: float) -> str:
    return (
        f"download refused: the server has {open_now} of its {limit} downloads open ({ADMIN_DOWNLOAD_SERVER_LIMIT} "
        f"= {limit}) and keeps the last {reserve} for accounts that hold none ({ADMIN_DOWNLOAD_SERVER_RESERVE} = "
        f"{reserve}); the account {user} holds {held}. Retry when one of its downloads is finished or cancelled "
        f"(idle ones are released after {_seconds(idle_timeout)}, every one after "
        f"{transfer_bounds().max_lifetime:g} s ({ADMIN_DOWNLOAD_MAX_LIFETIME}))"
    )


def admit(conn, command: str, session, session_mgr, idle_timeout: float) -> Optional[str]:
    """None if the download command may run (a pending slot is taken), else the refusal text."""
    if command not in DOWNLOAD_COMMANDS or session is None or session_mgr is None:
        return None
    limits = download_limits()
    now = time.time()
    with _lock:
        for slot, (_, _, since) in list(_pending.items()):
            if now - since > PENDING_TTL:
                del _pending[slot]
        open_now, users = _transactions(session_mgr)
        by_user = {}
        for sid, n in open_now.items():
            user = users.get(sid)
            by_user[user] = by_user.get(user, 0) + n
        for sid, user, _ in _pending.values():
            open_now[sid] = open_now.get(sid, 0) + 1
            by_user[user] = by_user.get(user, 0) + 1
        if open_now.get(session.sess_id, 0) >= limits.per_session:
            return session_limit_message(limits.per_session, idle_timeout)
        if by_user.get(session.user_name, 0) >= limits.per_user:
            return user_limit_message(session.user_name, limits.per_user, idle_timeout)
        total, held = sum(open_now.values()), by_user.get(session.user_name, 0)
        if total >= limits.per_server:
            return server_limit_message(limits.per_server, idle_timeout)
        if held and total >= limits.per_server - limits.reserve:
            return reserve_message(session.user_name, held, total, limits.per_server, limits.reserve, idle_timeout)
        slot = next(_ids)
        _pending[slot] = (session.sess_id, session.user_name, now)
    conn.set_prop(_SLOT, slot)
    return None


def release(conn) -> None:
    """The command has run: its download (if any) is bound to the session now."""
    slot = conn.get_prop(_SLOT)
    if slot is not None:
        with _lock:
            _pending.pop(slot, None)


def end_overdue(session_mgr, now: float) -> list:
    """End the downloads bound longer than admin_download_max_lifetime; the (session, binding) ended.

    The age counts from when this sweep first saw the binding (at most a sweep after the
    command bound it). Runs in the range server's sweeper thread, never in a shared one:
    a cancel callback may remove a transaction's folder.
    """
    lifetime = transfer_bounds().max_lifetime
    with session_mgr.sess_update_lock:
        bindings = {(sid, tx): cancel for sid, txs in session_mgr.downloads.items() for tx, cancel in txs.items()}
    with _lock:
        seen = _first_seen.setdefault(session_mgr, {})
        for key in [k for k in seen if k not in bindings]:
            del seen[key]
        overdue = [key for key in bindings if now - seen.setdefault(key, now) > lifetime + OVERDUE_GRACE]
        for key in overdue:
            del seen[key]
    for sid, tx in overdue:
        session_mgr.end_download(sid, tx)
        try:
            bindings[(sid, tx)]()
        except Exception as e:
            log.error(f"ending download {tx} of session {sid} after its lifetime failed: {type(e).__name__}: {e}")
        else:
            log.warning(
                f"ended download {tx} of session {sid}: open longer than {lifetime:g} s ({ADMIN_DOWNLOAD_MAX_LIFETIME})"
            )
    return overdue
