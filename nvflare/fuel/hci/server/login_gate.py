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
"""What happens around upstream's ``_cert_login`` handler, in the order it must happen.

Before the handler (AuditedAuthzFilter.pre_command; upstream's LoginModule filter lets
logins through unchecked): the login bounds first (login_limits: a refusal there costs
no cryptography), then the binding to the connection and the once-only signature
(login_binding). A refusal is sent as upstream's own login reply (``REJECT: CODE:
detail``: every console shows the detail and does not retry) and audited.

After the handler (post_command): a login that returned a token has its session recorded
(session_ledger); one that did not counts as a failed login, and its reason is audited
(upstream's CommandAudit records only that a login was tried).
"""

from typing import List

from nvflare.fuel.hci.conn import Connection
from nvflare.fuel.hci.proto import InternalCommands, ProtoKey
from nvflare.fuel.hci.server import login_binding, login_limits, session_ledger

MAX_ACTION_LENGTH = 100
_ADMITTED = "_fork_login_admitted"


def is_login(args: List[str]) -> bool:
    return bool(args) and args[0] == InternalCommands.CERT_LOGIN


def before_login(conn: Connection, args: List[str]) -> bool:
    """True to let upstream's handler check the login; False when it was refused here."""
    if len(args) != 2:
        return True  # the handler rejects it (upstream's reply)
    asserted = args[1]
    account = login_binding.connection_identity(conn) or asserted
    peer = login_binding.connection_peer(conn)
    refusal = login_limits.admit(account, peer)
    if refusal is None:
        refusal = login_binding.check_login(conn, asserted)
        if refusal is not None:
            login_limits.finished(account, peer, ok=False)
    if refusal is not None:
        conn.append_string(refusal)
        login_limits.audit_refusal(account, (conn.command or "")[:MAX_ACTION_LENGTH], refusal, peer)
        return False
    conn.set_prop(_ADMITTED, (account, peer))
    return True


def after_login(conn: Connection, args: List[str]) -> None:
    admitted = conn.get_prop(_ADMITTED)
    if admitted is None:
        return
    token = session_ledger.login_token(conn)
    if token is not None:
        session_ledger.record_login(conn, token)
    login_limits.finished(*admitted, ok=token is not None)
    if token is None:
        replies = [d.get(ProtoKey.DATA) for d in conn.buffer.data if d.get(ProtoKey.TYPE) == ProtoKey.STRING]
        reason = str(replies[-1]) if replies else "no reply"
        login_limits.audit_refusal(admitted[0], (conn.command or "")[:MAX_ACTION_LENGTH], reason, admitted[1])
