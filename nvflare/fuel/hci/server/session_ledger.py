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
"""A session token works only for the session a login of this server created, from its account.

Upstream's LoginModule.pre_command recreates any session it does not hold from the
signed token the command carries (SessionManager.recreate_session), so that admins keep
working across a server restart. It cannot tell a session it lost from one that ended:
after ``_logout`` (or an idle timeout, a certificate expiry, the session trim) the same
token recreated the session at the next command, from any admin connection, including
one authenticated as another account (reproduced by the reviewers). The token never
expires either, so a logged-out session could not be ended at all.

So the server keeps the Session object each successful login created (recorded after the
login, from the token it returned), and every command's session must be that very object:
a session recreated from a token is a different object, and is ended again at once and
refused with upstream's ``session_inactive`` keyword (the console treats it as an ended
session). Whatever the server's session manager drops (logout, idle, certificate expiry,
trim) can therefore never come back. The price: after a server restart no earlier token
works, and admins log in again (upstream consoles do so with their usual login).

A live session is also refused to a command whose admin connection authenticated as
another account (login_binding.connection_identity): a token copied from one admin's
client does not work from another's. Nothing is ended then; the owner keeps its session.
"""

import threading
from typing import Optional

from nvflare.fuel.hci.proto import ProtoKey, ReplyKeyword
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.fuel.hci.server.login_binding import connection_identity
from nvflare.fuel.hci.server.sess import Session
from nvflare.fuel.utils.log_utils import get_module_logger

logger = get_module_logger(__name__)

_lock = threading.Lock()
_created = {}  # session id -> the Session object a login of this server created


def ended_message() -> str:
    return (
        f"{ReplyKeyword.SESSION_INACTIVE}: this admin session has ended (logout, idle timeout, certificate expiry, "
        f"too many sessions of the account, or a server restart) and its token is no longer accepted; log in again"
    )


def foreign_message(owner: str, verified: str) -> str:
    return (
        f"{ReplyKeyword.NOT_AUTHORIZED}: this session token belongs to {owner}, but this admin connection was "
        f"authenticated as {verified}; a session works only from its own account's admin client"
    )


def _session_mgr(conn):
    return getattr(conn.get_prop(ConnProps.ADMIN_SERVER), "sess_mgr", None)


def record_login(conn, token: str) -> None:
    """After a successful _cert_login: remember the session it created (and forget ended ones)."""
    session_mgr = _session_mgr(conn)
    hci = conn.get_prop(ConnProps.HCI_SERVER)
    if session_mgr is None or hci is None:
        return
    try:
        decoded = Session.decode_token(token, hci.get_id_asserter())
    except Exception as e:
        logger.warning(f"cannot read the session token of a login: {type(e).__name__}: {e}")
        return
    with session_mgr.sess_update_lock:
        live = dict(session_mgr.sessions)
    with _lock:
        for sess_id in [s for s, obj in _created.items() if live.get(s) is not obj]:
            del _created[sess_id]
        if decoded is not None and decoded.sess_id in live:
            _created[decoded.sess_id] = live[decoded.sess_id]


def check_command(conn) -> Optional[str]:
    """Before a command that runs in a session: None, or the refusal the user gets."""
    session = conn.get_prop(ConnProps.SESSION)
    if session is None:
        return None
    with _lock:
        created = _created.get(session.sess_id) is session
    if not created:
        session_mgr = _session_mgr(conn)
        if session_mgr is not None:
            session_mgr.end_session_by_id(session.sess_id)  # no reason: nobody is told, it never was
        logger.warning(f"refused the token of an ended admin session of {session.user_name} ({session.sess_id})")
        return ended_message()
    verified = connection_identity(conn)
    if verified is not None and verified != session.user_name:
        return foreign_message(session.user_name, verified)
    return None


def login_token(conn) -> Optional[str]:
    """The session token a _cert_login returned, if it succeeded."""
    tokens = [d.get(ProtoKey.DATA) for d in conn.buffer.data if d.get(ProtoKey.TYPE) == ProtoKey.TOKEN]
    return tokens[-1] if tokens else None
