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
"""Raw ``_cert_login`` requests, as an upstream 2.9.0 admin client sends them, or an attacker.

An upstream client signs its user name with an empty nonce (AdminAPI._user_login) and
sends the signature and its certificate as command headers; these helpers build the same
headers from a kit and send them over an already authenticated admin connection (a FLARE
API Session's cell), so a test can replay, flood or forge logins exactly.
"""

import time
from pathlib import Path

from nvflare.fuel.hci.proto import InternalCommands
from nvflare.private.fed.utils.identity_utils import IdentityAsserter


def signer(kit) -> IdentityAsserter:
    startup = Path(kit) / "startup"
    return IdentityAsserter(private_key_file=str(startup / "client.key"), cert_file=str(startup / "client.crt"))


def login_headers(asserter: IdentityAsserter, signed: str = None) -> dict:
    """What an upstream client sends; ``signed`` other than its CN makes a bad signature."""
    content = asserter.cn if signed is None else signed
    return {
        "user_name": asserter.cn,
        "cert": asserter.cert_data,
        "signature": asserter.sign(content, return_str=False),
        "study": "default",
    }


def send_login(sess, user: str, headers: dict) -> tuple:
    """(reply line, token or None, seconds) of one _cert_login on ``sess``'s admin connection."""
    started = time.time()
    # a copy: the cell keeps state in the headers dict of a message it sent
    result = sess.api.server_execute(f"{InternalCommands.CERT_LOGIN} {user}", headers=dict(headers))
    took = time.time() - started
    data = result.get("data") or []
    lines = [d["data"] for d in data if d.get("type") in ("string", "error")]
    tokens = [d["data"] for d in data if d.get("type") == "token"]
    return (lines[-1] if lines else repr(result)), (tokens[-1] if tokens else None), took
