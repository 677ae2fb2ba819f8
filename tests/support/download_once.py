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
"""One FLARE API download_job_component in this process; the result as JSON on stdout.

    python download_once.py <admin kit> <user> <job_id> <component> <destination>

Prints ``RESULT {"path": ...}`` or ``RESULT {"error": "<ExceptionType>: <message>"}``.
"""

import json
import sys

from nvflare.fuel.flare_api.flare_api import new_secure_session


def main(kit, user, job_id, component, dest):
    sess = new_secure_session(user, kit, timeout=60)
    try:
        result = {"path": sess.download_job_component(job_id, component, dest)}
    except Exception as e:
        result = {"error": f"{type(e).__name__}: {e}"}
    finally:
        sess.close()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:6])
