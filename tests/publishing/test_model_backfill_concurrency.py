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
"""Issue 21 §3 on a real system: one backfill no longer blocks all others.

Three finished jobs without models, each with a workspace archive holding a BIG model
(seconds of copying, extracting and hashing per backfill). Backfills of two jobs run at
the same time (their "started" and "backfilled" lines in the server log overlap, where
the old global lock ran them one after the other); a third command beyond
model_backfill_limit (2) is refused at once with the exact message and audited; a
``--all`` beside a running single-job backfill goes through every job at once, answering
"in progress" for the one being backfilled, instead of waiting for it; project_admin's
``list_jobs`` stays fast throughout. (model_backfill_limit's startup message is checked in
test_admin_sessions_units.py.)
"""

import contextlib
import re
import statistics
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from flare_system import FlareSystem
from job_components import write_numpy_job
from model_jobs import GLOBAL, PUBLISHER, add_server_component, workspace_files

from nvflare.fuel.flare_api.model_backfill import BackfillFailed
from nvflare.fuel.hci.model_backfill_defs import BACKFILL_JOB_MODEL
from nvflare.private.fed.server.model_backfill_limits import DEFAULT_LIMIT, busy_message

pytestmark = pytest.mark.system

NP_MODEL = "models/server.npy"
BIG = 256 << 20
CHUNK = 8 << 20
LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*" + BACKFILL_JOB_MODEL + r" (\S+): (started|backfilled)\b", re.M
)


def big_workspace(system, job_id):
    """The job's real archive, its model member replaced by BIG bytes (backfill copies, never parses them)."""
    members = workspace_files(system, job_id)
    path = system.job_store_dir(job_id) / "workspace"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            if name != NP_MODEL:
                z.writestr(name, data)
        with z.open(NP_MODEL, "w", force_zip64=True) as f:
            for _ in range(BIG // CHUNK):
                f.write(bytes(CHUNK))


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """(system, [three finished job ids without models, each with a BIG model in its archive])."""
    root = tmp_path_factory.mktemp("backfills")
    system = FlareSystem(root, n_clients=1)
    try:
        system.prepare().start()
        ids = []
        with system.session() as sess:
            for i in range(3):
                job = write_numpy_job(root / f"job{i}", name=f"np-{i}", n_clients=1)
                add_server_component(job, {"id": "model_publisher", "path": PUBLISHER, "args": {"enabled": False}})
                ids.append(sess.submit_job(str(job)))
            for job_id in ids:
                sess.wait_for_job(job_id, timeout=300, poll_interval=0.5)
                assert sess.get_job_meta(job_id)["status"] == "FINISHED:COMPLETED", job_id
        for job_id in ids:
            big_workspace(system, job_id)
        yield system, ids
    finally:
        system.stop()


def started(system, *job_ids, timeout=60.0):
    """Wait until the server logged the start of each job's backfill."""
    deadline = time.time() + timeout
    while not set(job_ids) <= {j for _, j, what in LOG_LINE.findall(server_log(system)) if what == "started"}:
        assert time.time() < deadline, f"no backfill start of {job_ids} logged"
        time.sleep(0.05)


def server_log(system) -> str:
    return (system.server_dir / "log.txt").read_text(errors="replace")


def intervals(system) -> dict:
    """{job id: (started, backfilled)} from the server log."""
    found = {}
    for stamp, job_id, what in LOG_LINE.findall(server_log(system)):
        found.setdefault(job_id, {})[what] = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return {j: (t["started"], t["backfilled"]) for j, t in found.items() if len(t) == 2}


class Watch:
    """project_admin's list_jobs in ``sess``, again and again, while something else runs."""

    def __init__(self, sess):
        self.sess, self.latencies, self.stop = sess, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            started = time.time()
            self.sess.list_jobs()
            self.latencies.append(time.time() - started)
            time.sleep(0.1)

    def __enter__(self):
        self.thread = threading.Thread(target=self.run)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(60)


@contextlib.contextmanager
def sessions(system, n):
    """``n`` project_admin sessions, opened one after the other before anything runs.

    Upstream's admin client gives its registration 2 s (authenticate_msg_timeout) and does
    not retry a late reply: connects at the same moment on a loaded 2-core host can miss it.
    """
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(system.session()) for _ in range(n)]


def backfill(sess, job_id):
    """(outcome or refusal text, seconds, time it ended) of one backfill."""
    begin = time.time()
    try:
        outcome = sess.backfill_job_model(job_id)["outcome"]
    except BackfillFailed as e:
        outcome = str(e)
    return outcome, time.time() - begin, time.time()


def test_two_jobs_in_parallel_a_third_refused_at_once(jobs):
    system, (j1, j2, j3) = jobs
    with sessions(system, 4) as (w, s1, s2, s3), Watch(w) as watch, ThreadPoolExecutor(2) as pool:
        first = [pool.submit(backfill, s, j) for s, j in ((s1, j1), (s2, j2))]
        started(system, j1, j2)
        refused, took, _ = backfill(s3, j3)  # while both slots are taken
        results = [f.result() for f in first]
    assert [r[0] for r in results] == ["backfilled", "backfilled"], results
    assert refused == busy_message(DEFAULT_LIMIT), refused
    assert took < 1.0, took  # at once, not after a backfill finished
    (a_start, a_end), (b_start, b_end) = (intervals(system)[j] for j in (j1, j2))
    print(f"backfills: {j1} {a_start:.2f}-{a_end:.2f}, {j2} {b_start:.2f}-{b_end:.2f}; third refused in {took:.3f} s")
    print(
        f"list_jobs during backfills: median {statistics.median(watch.latencies):.3f} s, max {max(watch.latencies):.3f} s"
    )
    assert a_start < b_end and b_start < a_end, ((a_start, a_end), (b_start, b_end))  # they overlapped
    assert min(a_end - a_start, b_end - b_start) > 0.5  # long enough for the overlap to mean something
    assert statistics.median(watch.latencies) < 0.5 and max(watch.latencies) < 5, watch.latencies
    audit = system.audit_log.read_text()
    assert f"[A:{BACKFILL_JOB_MODEL} {j3}] REFUSED: {busy_message(DEFAULT_LIMIT)}" in audit


def test_all_beside_a_single_job_backfill(jobs):
    system, (j1, j2, j3) = jobs
    with sessions(system, 3) as (w, s1, s2), Watch(w) as watch, ThreadPoolExecutor(1) as pool:
        single = pool.submit(backfill, s1, j3)
        started(system, j3)
        batch = {r["job_id"]: r for r in s2.backfill_all_job_models()}
        batch_ended = time.time()
        outcome, _, single_ended = single.result()
    assert outcome == "backfilled"
    assert batch_ended < single_ended  # the batch did not wait for the single backfill
    assert batch[j1]["outcome"] == batch[j2]["outcome"] == "skipped", batch
    assert batch[j3]["outcome"] == "in progress", batch
    assert batch[j3]["message"] == "another backfill of this job is running: run the command again"
    assert statistics.median(watch.latencies) < 0.5 and max(watch.latencies) < 5, watch.latencies
    with system.session() as sess:
        assert all(GLOBAL in sess.list_job_components(j) for j in (j1, j2, j3))
