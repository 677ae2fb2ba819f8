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
"""Run by upstream 2.9.0's python (tests/support/upstream_flare.py): its own FLARE API logs in.

  python upstream_login_client.py <user> <kit> <out.json>

Logs in with upstream's unchanged client code, runs list_jobs, logs out with ``_logout``,
then sends list_jobs again with the token it had. Writes to out.json what it saw, and the
login headers it sent (so the test can replay exactly what an upstream client put on the
wire).
"""

import base64
import json
import sys

from nvflare.fuel.flare_api.flare_api import new_secure_session
from nvflare.fuel.hci.client import api as client_api


def _text(result: dict) -> str:
    return "\n".join(str(d.get("data")) for d in result.get("data") or [] if d.get("type") in ("string", "error"))


def main(user: str, kit: str, out: str):
    sent = {}
    original = client_api.AdminAPI.server_execute

    def recording(self, command, reply_processor=None, cmd_entry=None, cmd_ctx=None, props=None, headers=None):
        if command.startswith("_cert_login") and headers:
            sent.update(headers)
        return original(self, command, reply_processor, cmd_entry, cmd_ctx, props, headers)

    client_api.AdminAPI.server_execute = recording
    sess = new_secure_session(user, kit, timeout=30)
    report = {}
    try:
        api = sess.api
        listed = api.server_execute("list_jobs")
        report["list_jobs"] = str(listed.get("status"))
        token = api.token
        report["logout"] = _text(api.server_execute("_logout"))
        api.token = token
        after = api.server_execute("list_jobs")
        report["after_logout"] = {"status": str(after.get("status")), "text": _text(after)}
    finally:
        sess.close()
    report["headers"] = {
        "cert": base64.b64encode(sent["cert"]).decode(),
        "signature": base64.b64encode(sent["signature"]).decode(),
        "study": sent.get("study"),
        "user_name": sent.get("user_name"),
    }
    with open(out, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
