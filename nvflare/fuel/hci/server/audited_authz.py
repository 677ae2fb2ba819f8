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
"""

from typing import List

from nvflare.fuel.hci.conn import Connection
from nvflare.fuel.hci.proto import MetaKey, ProtoKey
from nvflare.fuel.hci.server.authz import AuthzFilter
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.fuel.sec.audit import AuditService

# Same cut as CommandAudit, so a refused and an allowed command look alike in the log.
MAX_ACTION_LENGTH = 100
MAX_REASON_LENGTH = 200


def refusal_reason(conn: Connection) -> str:
    """The error text the refused user sees (the last error in the reply)."""
    errors = [d.get(ProtoKey.DATA) for d in conn.buffer.data if d.get(ProtoKey.TYPE) == ProtoKey.ERROR]
    reason = errors[-1] if errors else conn.buffer.meta.get(MetaKey.INFO) or conn.buffer.meta.get(MetaKey.STATUS)
    return repr(str(reason or "refused"))[1:-1][:MAX_REASON_LENGTH]


class AuditedAuthzFilter(AuthzFilter):
    def pre_command(self, conn: Connection, args: List[str]):
        allowed = super().pre_command(conn, args)
        if not allowed:
            AuditService.add_event(
                user=conn.get_prop(ConnProps.USER_NAME, "?"),
                action=(conn.command or "")[:MAX_ACTION_LENGTH],
                msg=f" REFUSED: {refusal_reason(conn)}",
            )
        return allowed
