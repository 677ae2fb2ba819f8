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
"""How many admin sessions one account may hold on the server.

Upstream creates a session for every successful ``_cert_login`` and keeps it until logout
or until it has been idle for the session timeout (1800 s); its monitor ends at most one
expired session per interval (5 s). Nothing bounds the number per account: one account
logging in in a loop (no logout) grew the server parent by about 16 KB per session
(2000 logins: +30 MiB), faster than they expire. (The login rate is bounded too, by
login_limits; this bounds what an account holds.)

So the bound is kept after the fact: after each command (a login included), if the
account has more than admin_session_user_limit sessions, its least recently active ones
(never the one that just acted) are ended the upstream way (end_session_by_id: its
downloads cancelled, the client told why). Nobody is locked out: the newest login always
works; an ended session's token is refused from then on (session_ledger), so its client
logs in again. The account is the user name, as for the download limits
(download_admission).
"""

from nvflare.fuel.hci.proto import InternalCommands, ProtoKey
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.fuel.hci.server.download_settings import ADMIN_SESSION_USER_LIMIT, admin_session_user_limit
from nvflare.fuel.utils.log_utils import get_module_logger

logger = get_module_logger(__name__)


def ended_message(user: str, limit: int) -> str:
    return (
        f"Your session is closed: the account {user} has more than {limit} admin sessions "
        f"({ADMIN_SESSION_USER_LIMIT} = {limit}); its least recently used sessions are closed"
    )


def _acting(conn, args) -> tuple:
    """(user name, session id to keep) of the command on ``conn``; (None, None) if none."""
    session = conn.get_prop(ConnProps.SESSION)
    if session is not None:
        return session.user_name, session.sess_id
    if args and args[0] == InternalCommands.CERT_LOGIN and len(args) == 2:
        if any(d.get(ProtoKey.TYPE) == ProtoKey.TOKEN for d in conn.buffer.data):
            return args[1], None  # a successful login: its session is the account's newest
    return None, None


def trim_sessions(conn, args) -> list:
    """After a command: end the account's least recently active sessions beyond the limit."""
    user, keep = _acting(conn, args)
    session_mgr = getattr(conn.get_prop(ConnProps.ADMIN_SERVER), "sess_mgr", None)
    if user is None or session_mgr is None:
        return []
    limit = admin_session_user_limit()
    with session_mgr.sess_update_lock:
        mine = [s for s in session_mgr.sessions.values() if s.user_name == user]
    if len(mine) <= limit:
        return []
    if keep is None:
        keep = max(mine, key=lambda s: s.start_time).sess_id
    others = sorted((s for s in mine if s.sess_id != keep), key=lambda s: s.last_active_time)
    ended = [s.sess_id for s in others[: len(mine) - limit]]
    for sess_id in ended:
        session_mgr.end_session_by_id(sess_id, ended_message(user, limit))
    logger.info(f"ended {len(ended)} idle admin session(s) of {user}: more than {limit} ({ADMIN_SESSION_USER_LIMIT})")
    return ended
