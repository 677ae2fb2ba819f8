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
"""A login counts only on the admin connection of the account it names, and only once.

Upstream's ``_cert_login`` carries the admin's certificate and a signature over the user
name with an empty nonce (AdminAPI._user_login, LoginModule.handle_cert_login). Nothing in
it is fresh, so whoever sees one login's headers (a debug log, a relay, a process that
reads the server's memory) can send them again, from any admin connection, and get a
session of that account: the reviewers logged in as another account from their own
connection that way.

An upstream 2.9.0 console cannot sign a server nonce (its code signs ``""``), and it must
keep logging in. But its connection already went through a nonce challenge: every admin
client authenticates its cell to the server before it sends a command (Authenticator,
client_type admin, the server's nonce signed with the admin's key), and in secure mode
the server checks the signed client-name token on every message after that
(validate_auth_headers). So the login is bound to what that challenge proved:

- the user name of the login must be the account the connection authenticated as; a
  login for another account is refused (whoever replays it would have to hold that
  account's key, and then needs no replay);
- a login signature is accepted once. PSS signatures are randomised, so an honest
  client's logins never repeat one; a repeat is a replay, refused even on the account's
  own connection. The server remembers the last SEEN_SIGNATURES signatures (sha256).

Where the server does not run in secure mode no connection is authenticated; upstream
admin clients cannot connect to such a server at all (its challenge handler refuses), so
only the once-only rule applies there.
"""

import hashlib
import threading
from collections import OrderedDict
from typing import Optional

from nvflare.fuel.f3.cellnet.defs import MessageHeaderKey
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.private.defs import CellMessageHeaderKeys

REJECT_IDENTITY = "AUTH_LOGIN_IDENTITY"
REJECT_REPLAYED = "AUTH_LOGIN_REPLAYED"
SEEN_SIGNATURES = 20000

_lock = threading.Lock()
_seen = OrderedDict()  # sha256 of a login signature -> None, oldest first


def connection_identity(conn) -> Optional[str]:
    """The account the command's admin connection authenticated as; None when not known.

    Only in secure mode is the client-name header checked by the server (its signed
    token); an upload (no cell request on the connection) has none either.
    """
    server = getattr(conn.get_prop(ConnProps.ENGINE), "server", None)
    request = conn.get_prop(ConnProps.REQUEST)
    if not getattr(server, "secure_train", False) or request is None:
        return None
    name = request.get_header(CellMessageHeaderKeys.CLIENT_NAME)
    return name if isinstance(name, str) and name else None


def connection_peer(conn) -> str:
    """The admin client connection (its cell) a command came on."""
    request = conn.get_prop(ConnProps.REQUEST)
    origin = request.get_header(MessageHeaderKey.ORIGIN) if request is not None else None
    return str(origin or "?")


def identity_message(asserted: str, verified: str) -> str:
    return (
        f"REJECT: {REJECT_IDENTITY}: this login is for {asserted}, but this admin connection was "
        f"authenticated as {verified}; log in with the kit of {asserted}"
    )


def replay_message() -> str:
    return (
        f"REJECT: {REJECT_REPLAYED}: this login signature was used before; a login is accepted once, "
        f"from the admin client that signed it"
    )


def _signature_digest(signature) -> Optional[str]:
    if isinstance(signature, str):
        signature = signature.encode("utf-8")
    if not isinstance(signature, (bytes, bytearray)) or not signature:
        return None
    return hashlib.sha256(bytes(signature)).hexdigest()


def check_login(conn, asserted: str) -> Optional[str]:
    """Before the login handler: the refusal line (upstream's ``REJECT: CODE: detail``), or None.

    A signature that passes is remembered here, so two copies sent at once cannot both pass.
    """
    verified = connection_identity(conn)
    if verified is not None and verified != asserted:
        return identity_message(asserted, verified)
    digest = _signature_digest((conn.get_prop(ConnProps.CMD_HEADERS) or {}).get("signature"))
    if digest is None:
        return None  # no signature: the handler refuses it
    with _lock:
        if digest in _seen:
            return replay_message()
        _seen[digest] = None
        while len(_seen) > SEEN_SIGNATURES:
            _seen.popitem(last=False)
    return None
