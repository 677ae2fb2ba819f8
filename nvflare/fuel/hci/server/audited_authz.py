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
"""Admin-command authorization that leaves a trace of every refusal in the audit log.

Upstream's CommandAudit filter runs after AuthzFilter, so a command refused by
authorization (or by its pre-authorization: an unknown job, a malformed job id, a wrong
argument count) never reached the audit trail: the log showed what users did, not what
they tried. This filter is AuthzFilter with one addition: when it stops a command, it
writes an audit event with the user, the command and the reason the user was given.
Allowed commands are audited by CommandAudit as before, once.

Two more checks ride on this filter because it is the one the fork installs in the admin
server's chain (admin-server-audit-refused-commands-and-sweep-stale-transfer-folders.patch):
a download command that passed authorization must also fit the download limits
(download_admission), refused and audited the same way; and after a successful login
the session's certificate is recorded (session_certs) for the direct download route;
after every command an account beyond admin_session_user_limit sessions loses its least
recently active ones (session_admission).

The filter also guards the session layer under those downloads (upstream weaknesses):
a ``_cert_login`` is bounded, bound to its connection and accepted once (login_gate,
login_limits, login_binding); a command's session must be one a login of this server
created, used from its own account's connection (session_ledger); and ``list_sessions``,
which upstream registers without any check, needs the right ``list_sessions``
(LIST_SESSIONS_RIGHT below).
``authorize_right`` is the same check as AuthzFilter's for a right other than the
command's own name (download_job_component picks the right by what it downloads).
"""

from typing import List

from nvflare.fuel.hci.conn import Connection
from nvflare.fuel.hci.proto import InternalCommands, MetaKey, MetaStatusValue, ProtoKey, ReplyKeyword, make_meta
from nvflare.fuel.hci.server import (
    download_admission,
    login_gate,
    login_limits,
    session_admission,
    session_certs,
    session_ledger,
)
from nvflare.fuel.hci.server.authz import AuthzFilter
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.fuel.sec.audit import AuditService
from nvflare.fuel.sec.authz import AuthorizationService, AuthzContext, Person

# Same cut as CommandAudit, so a refused and an allowed command look alike in the log.
MAX_ACTION_LENGTH = 100
MAX_REASON_LENGTH = 200

# list_sessions shows every account's sessions (user, org, role, session id, activity),
# across orgs: information upstream gives only to project_admin elsewhere
# (admin_check_status). Upstream's convention is that a command's name is its right
# (AuthzFilter); this right is in no category, like submit_job, so a default policy grants
# it to project_admin only ("any") and an operator grants it to others by naming it in
# authorization.json ("list_sessions": "any"). "view" would grant it to every member, and
# "operate" to every lead of the server's org.
LIST_SESSIONS_RIGHT = InternalCommands.LIST_SESSIONS


def refusal_reason(conn: Connection) -> str:
    """The error text the refused user sees (the last error in the reply)."""
    errors = [d.get(ProtoKey.DATA) for d in conn.buffer.data if d.get(ProtoKey.TYPE) == ProtoKey.ERROR]
    reason = errors[-1] if errors else conn.buffer.meta.get(MetaKey.INFO) or conn.buffer.meta.get(MetaKey.STATUS)
    return repr(str(reason or "refused"))[1:-1][:MAX_REASON_LENGTH]


def authorize_right(conn: Connection, right: str) -> bool:
    """AuthzFilter's check of ``right`` for the user and the job's submitter on ``conn``.

    On refusal the user gets AuthzFilter's error text for that right; the caller (a
    pre-authorization function) then returns ERROR, and the refusal is audited below.
    """

    def person(name, org, role) -> Person:
        return Person(name=conn.get_prop(name, ""), org=conn.get_prop(org, ""), role=conn.get_prop(role, ""))

    user = person(ConnProps.USER_NAME, ConnProps.USER_ORG, ConnProps.USER_ROLE)
    submitter = person(ConnProps.SUBMITTER_NAME, ConnProps.SUBMITTER_ORG, ConnProps.SUBMITTER_ROLE)
    authorized, err = AuthorizationService.authorize(AuthzContext(user=user, submitter=submitter, right=right))
    if err:
        conn.append_error(f"Authorization Error: {err}", meta=make_meta(MetaStatusValue.NOT_AUTHORIZED, err))
        return False
    if not authorized:
        conn.append_error(
            f"This action is {ReplyKeyword.NOT_AUTHORIZED}",
            meta=make_meta(MetaStatusValue.NOT_AUTHORIZED, ReplyKeyword.NOT_AUTHORIZED),
        )
        return False
    return True


def _admit_download(conn: Connection) -> bool:
    entry = conn.get_prop(ConnProps.CMD_ENTRY)
    admin = conn.get_prop(ConnProps.ADMIN_SERVER)
    session_mgr = getattr(admin, "sess_mgr", None)
    if entry is None or session_mgr is None or entry.name not in download_admission.DOWNLOAD_COMMANDS:
        return True
    from nvflare.fuel.hci.server.download_settings import admin_download_idle_timeout

    idle = admin_download_idle_timeout(admin)
    refusal = download_admission.admit(conn, entry.name, conn.get_prop(ConnProps.SESSION), session_mgr, idle)
    if refusal:
        conn.append_error(refusal, meta=make_meta(MetaStatusValue.ERROR, refusal))
        return False
    return True


def _session_ok(conn: Connection) -> bool:
    refusal = session_ledger.check_command(conn)
    if refusal:
        conn.append_error(refusal, meta=make_meta(MetaStatusValue.NOT_AUTHORIZED, refusal))
        return False
    return True


def _list_sessions_ok(conn: Connection) -> bool:
    entry = conn.get_prop(ConnProps.CMD_ENTRY)
    if entry is None or entry.name != InternalCommands.LIST_SESSIONS or entry.authz_func is not None:
        return True
    return authorize_right(conn, LIST_SESSIONS_RIGHT)


class AuditedAuthzFilter(AuthzFilter):
    def __init__(self):
        super().__init__()
        login_limits.configure()  # the admin server is being built: a bad login setting stops it here

    def pre_command(self, conn: Connection, args: List[str]):
        if login_gate.is_login(args):
            return login_gate.before_login(conn, args) and super().pre_command(conn, args)
        allowed = (
            _session_ok(conn) and _list_sessions_ok(conn) and super().pre_command(conn, args) and _admit_download(conn)
        )
        if not allowed:
            AuditService.add_event(
                user=conn.get_prop(ConnProps.USER_NAME, "?"),
                action=(conn.command or "")[:MAX_ACTION_LENGTH],
                msg=f" REFUSED: {refusal_reason(conn)}",
            )
        return allowed

    def post_command(self, conn: Connection, args: List[str]):
        download_admission.release(conn)
        if login_gate.is_login(args):
            login_gate.after_login(conn, args)
        session_certs.record_login(conn, args)
        session_admission.trim_sessions(conn, args)
        return True
