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
"""Faults of a docker deployment on the real engine: a job container killed mid-job, a
full volume where the store writes at publish time, the server parent container
restarted. Nothing half published, nothing stored lost."""

import hashlib
import re
import time

import pytest
from container_deployment import archive, job_meta, member, submit, wait_ended, wait_finished
from container_engine import PT_IMAGE
from container_jobs import pt_job
from model_jobs import BEST, GLOBAL

pytestmark = [pytest.mark.system, pytest.mark.slow]

STAGING = "/var/tmp/nvflare/workspace/.model_store_staging"


def wait_until(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def job_containers(engine, job_id: str) -> list:
    names = engine.podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    return [n for n in names if job_id in n]


def assert_nothing_stored(deployment, job_id: str, components: list):
    assert not [c for c in components if c.startswith("MODEL_")], components
    stored = sorted(p.name for p in deployment.job_store_dir(job_id).iterdir())
    assert not [n for n in stored if n.startswith("MODEL_")], stored  # nor a storage temp file of one
    assert "component_records" not in job_meta(deployment, job_id)
    staging = deployment.kit("server") / ".model_store_staging"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_job_container_killed_mid_job(deployment, engine, tmp_path):
    """SIGKILL of the job's server container through the Docker API, in round 1: the job ends
    (by itself, or by abort_job where the engine loses the exit: container_deployment.wait_ended)
    and nothing of it is stored. Docker Engine reports 137 (EXECUTION_EXCEPTION).
    """
    job = pt_job(tmp_path, "pt_killed", PT_IMAGE, num_rounds=500)
    job_id, watch = submit(deployment, job)
    # the job's own log, written by its server container into the bind-mounted run folder
    job_log = deployment.kit("server") / job_id / "log.txt"
    try:
        wait_until(lambda: watch.container, 300, "the job's server container")
        wait_until(lambda: job_log.exists() and "Round 1 started." in job_log.read_text(), 300, "round 1")
        engine.docker().containers.get(f"server-{job_id}").kill()  # SIGKILL, through the Docker API
        status, components, ended = wait_ended(deployment, job_id)
    finally:
        watch.stop()
    print(f"killed job {job_id} ended {ended}: {status}")
    assert status.startswith("FINISHED:"), status
    assert engine.container(f"server-{job_id}") is None
    assert_nothing_stored(deployment, job_id, components)
    # the sites' job containers end too (upstream aborts the job on the clients)
    wait_until(lambda: not job_containers(engine, job_id), 180, "the job's containers to go")


def test_full_volume_at_publish_time(deployment, tmp_path):
    """The store's staging folder on a full volume: the link crosses filesystems, the copy
    finds no space; the job completes, its models stay in its workspace, no partial file."""
    job = pt_job(tmp_path, "pt_full", PT_IMAGE, num_rounds=1)
    job_id, watch = submit(deployment, job)
    try:
        wait_until(lambda: watch.container, 300, "the job's server container")
        with deployment.full_volume_in_parent(STAGING) as staged:
            status, components = wait_finished(deployment, job_id, timeout=600)
            left_in_full_volume = staged()
    finally:
        watch.stop()
    assert status == "FINISHED:COMPLETED", deployment.parent_log()[-4000:]
    assert left_in_full_volume == [], "a partial copy was left where the store stages"
    assert_nothing_stored(deployment, job_id, components)
    log = deployment.parent_log()
    # the store says which folder is full: the space check before the copy, or the copy itself
    errors = re.findall(rf"Did not store a model: (.*)", log)
    full = (
        rf"no space left in {STAGING} to store the (global|best) model of job {job_id} \(No space left on device\)",
        rf"not enough free disk space to store the (global|best) model of job {job_id}: it needs \d+ bytes \(\d+ "
        rf"bytes plus a margin of \d+\) in {STAGING}, and \d+ bytes are free",
    )
    assert errors and all(any(re.fullmatch(f, e) for f in full) for e in errors), errors or log[-4000:]
    files = archive(deployment, job_id)
    assert member(files, "app_server/FL_global_model.pt"), "the model stays in the job's workspace"
    job_log = files["log.txt"].decode(errors="replace")
    assert re.search(
        rf"Failed to publish .*: (no space left in|not enough free disk space) .*{STAGING}", job_log
    ), job_log[-4000:]


def test_server_parent_container_restarted(deployment, engine, pt_run, tf_run, tmp_path):
    """Stop the parent (start_docker.sh's --rm container is gone) and start it again from its kit."""
    jobs = {pt_run.job_id: (GLOBAL, BEST), tf_run.job_id: (GLOBAL, BEST)}
    before = {job_id: job_meta(deployment, job_id)["component_records"] for job_id in jobs}
    first = engine.container("server")["Id"]
    deployment.stop("server")
    assert engine.container("server") is None
    offset = len(deployment.parent_log())
    deployment.start("server")
    deployment.wait_for_log("server", "Server started", 180, since=offset)
    deployment.wait_until_up(180)
    assert engine.container("server")["Id"] != first
    with deployment.session() as sess:
        for job_id, components in jobs.items():
            assert sess.get_job_meta(job_id)["status"] == "FINISHED:COMPLETED"
            assert set(components) <= set(sess.list_job_components(job_id))
            assert job_meta(deployment, job_id)["component_records"] == before[job_id]
            for component in components:
                path = sess.download_job_component(job_id, component, str(tmp_path / job_id))
                with open(path, "rb") as f:
                    assert hashlib.sha256(f.read()).hexdigest() == before[job_id][component]["sha256"]
