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
"""Four admin sessions pull the same 200 MiB component at once while two jobs publish
their models: every file is right and the server's memory does not follow the data."""

import pytest
from downloads import api_result, start_api_download
from faults import BIG, BIG_COMPONENT
from job_components import sha256, write_numpy_job
from proc_watch import PeakRss

pytestmark = [pytest.mark.system, pytest.mark.slow]

DOWNLOADS = 4
JOBS = 2
# 4 x 200 MiB go out; a few 5 MiB chunks in flight per receiver, plus two job launches.
MEMORY_BOUND = 128 * 1024 * 1024


def download_all(system, job_id, folder) -> list:
    procs = [start_api_download(system, job_id, BIG_COMPONENT, folder / f"dl{i}") for i in range(DOWNLOADS)]
    return [api_result(p) for p in procs]


def test_concurrent_downloads_while_jobs_publish(fault_system, big_job, tmp_path, reliability):
    """Measured on a second round, after a first has grown the server's buffer pools and
    threads for 4 receivers: memory that followed the data would grow again by GBs."""
    system = fault_system
    stored = sha256(system.job_store_dir(big_job) / BIG_COMPONENT)
    download_all(system, big_job, tmp_path / "warm-up")
    with PeakRss(server=system.server_parent()) as rss:
        with system.session() as sess:
            jobs = [
                sess.submit_job(
                    str(write_numpy_job(tmp_path / f"job{i}", name=f"publish-{i}", n_clients=1, train_seconds=2))
                )
                for i in range(JOBS)
            ]
            results = download_all(system, big_job, tmp_path)
            for job_id in jobs:
                sess.wait_for_job(job_id, timeout=300, poll_interval=0.5)
            metas = [sess.get_job_meta(job_id) for job_id in jobs]
            published = [
                sess.download_job_component(job_id, "MODEL_global_model", str(tmp_path / "models")) for job_id in jobs
            ]
    for i, result in enumerate(results):
        assert result == {"path": str(tmp_path / f"dl{i}" / BIG_COMPONENT)}, result
        assert sha256(result["path"]) == stored
    for meta, path in zip(metas, published):
        assert meta["status"] == "FINISHED:COMPLETED", meta
        record = meta["component_records"]["MODEL_global_model"]
        assert sha256(path) == sha256(system.job_store_dir(meta["job_id"]) / "MODEL_global_model") == record["sha256"]
    grew = rss.growth("server")
    assert (
        grew < MEMORY_BOUND
    ), f"server parent grew by {grew / 2**20:.0f} MiB while sending {DOWNLOADS * BIG / 2**20:.0f} MiB"
    reliability.record(
        "4",
        "all 4 files have the stored sha256; both jobs FINISHED:COMPLETED with MODEL_global_model matching its "
        f"record; server parent RSS grew < {MEMORY_BOUND // 2**20} MiB while sending {DOWNLOADS * BIG // 2**20} MiB",
    )
