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
"""The certificate each admin session logged in with, by sha256 fingerprint.

The direct download route serves a transfer to an HTTPS client; binding it to the CN
alone would let any certificate the root CA issued under that name (an older kit, a
copy re-issued to someone else) take it. Upstream's server knows an admin's certificate
at exactly one point: ``_cert_login``, whose headers carry it and whose signature over
the user name proves the client holds its key (LoginModule.handle_cert_login). The
session it creates keeps only names and the expiry, and the cell connection keeps only
the peer's CN. So this records the fingerprint of the login certificate when the login
succeeds (audited_authz's post_command sees the login's headers and the token it
returned), keyed by session id. The admin kit uses the same certificate for its TLS
connections, so the route can demand that exact certificate.

Only sessions a login created are ever used (session_ledger refuses a session recreated
from a token), so every live session has its entry.
"""

import hashlib
import threading
from typing import Optional

from nvflare.fuel.hci.proto import InternalCommands, ProtoKey
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.fuel.hci.server.sess import Session
from nvflare.fuel.utils.log_utils import get_module_logger

logger = get_module_logger(__name__)

_lock = threading.Lock()
_fingerprints = {}  # session id -> sha256 hex of the login certificate (DER)


def fingerprint_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _login_fingerprint(cert_data) -> Optional[str]:
    from cryptography.hazmat.primitives.serialization import Encoding

    from nvflare.lighter.utils import load_crt_chain_bytes

    chain = load_crt_chain_bytes(cert_data)
    return fingerprint_der(chain[0].public_bytes(Encoding.DER)) if chain else None


def record_login(conn, args) -> None:
    """After a command: if it was a successful _cert_login, remember its certificate."""
    if not args or args[0] != InternalCommands.CERT_LOGIN:
        return
    tokens = [d.get(ProtoKey.DATA) for d in conn.buffer.data if d.get(ProtoKey.TYPE) == ProtoKey.TOKEN]
    headers = conn.get_prop(ConnProps.CMD_HEADERS) or {}
    hci = conn.get_prop(ConnProps.HCI_SERVER)
    if not tokens or not headers.get("cert") or hci is None:
        return
    try:
        session = Session.decode_token(tokens[-1], hci.get_id_asserter())
        fingerprint = _login_fingerprint(headers["cert"])
    except Exception as e:
        logger.warning(f"cannot record the login certificate of {args[1:2]}: {type(e).__name__}: {e}")
        return
    if session is None or not fingerprint:
        return
    session_mgr = getattr(conn.get_prop(ConnProps.ADMIN_SERVER), "sess_mgr", None)
    live = None
    if session_mgr is not None:
        with session_mgr.sess_update_lock:
            live = set(session_mgr.sessions)
    with _lock:
        if live is not None:  # forget sessions that ended
            for sid in [s for s in _fingerprints if s not in live]:
                del _fingerprints[sid]
        _fingerprints[session.sess_id] = fingerprint


def session_fingerprint(sess_id: str) -> Optional[str]:
    with _lock:
        return _fingerprints.get(sess_id)
