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
"""Settings and helpers of the fault-injection system (fixtures in tests/reliability/conftest.py).

Short timeouts so every fault resolves in seconds: the server expires an idle admin
download after 6 s (NVFLARE_ADMIN_DOWNLOAD_TIMEOUT) and the admin kits give the server
3 s per chunk request (file_download_progress_timeout), with upstream's 3 retries.
"""

import os

from job_components import JobStore, write_numpy_job

from nvflare.fuel.hci.client.component_range_reader import ATTEMPTS, RETRY_BACKOFF

ADMIN_DOWNLOAD_TIMEOUT = 6
PROGRESS_TIMEOUT = 3.0
BIG = 200 * 1024 * 1024
BIG_COMPONENT = "MODEL_big"
# The admin client's give-up time when the server does not answer: the direct response
# waits PROGRESS_TIMEOUT for data, then the ranges take over from there: ATTEMPTS requests
# of PROGRESS_TIMEOUT each, with doubling backoffs between them.
CLIENT_GIVE_UP = PROGRESS_TIMEOUT + ATTEMPTS * PROGRESS_TIMEOUT + RETRY_BACKOFF * (2 ** (ATTEMPTS - 1) - 1)
# DownloadService checks for expired transactions every 5 s.
SERVER_RELEASE = ADMIN_DOWNLOAD_TIMEOUT + 5


def write_big_file(path, size: int = BIG):
    with open(path, "wb") as f:
        for _ in range(size // (1 << 20)):
            f.write(os.urandom(1 << 20))
    return path


def new_job_with_big_model(system, big_file, folder) -> str:
    """A finished job: MODEL_global_model from the real publisher plus a recorded 200 MiB MODEL_big."""
    job_id, meta = system.submit_and_wait(write_numpy_job(folder, n_clients=1))
    assert meta["status"] == "FINISHED:COMPLETED", meta
    assert "MODEL_global_model" in meta.get("component_records", {}), meta
    JobStore(system.jobs_storage).put(job_id, BIG_COMPONENT, str(big_file))
    return job_id
