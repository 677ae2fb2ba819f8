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
"""Model publishing on a real POC system: models stored before FINISHED, verifiable, refused
from anyone but the job's own server process, and off when a job turns it off.

Behaviour tests for the patches
component-policy-allow-the-job-side-model-publisher-by-default.patch (the injected
publisher builds in a non-BYOC-checked job only because it is on the default allow-list)
and provisioning-enable-the-job-model-store-in-new-server-kits.patch (the POC system
publishes with no configuration at all): without either, no MODEL_ component appears.
They also depend on the storage patch (DataTypes.MODEL), tested directly in
test_storage_model_type.py.
"""

import hashlib
import io
import json
import re

import numpy as np
import pytest
import torch
from model_jobs import (
    BEST,
    GLOBAL,
    PUBLISHER,
    add_server_component,
    file_model_job,
    job_meta,
    member,
    np_fedavg_job,
    pt_fedavg_job,
    run_and_catch_finish,
    workspace_files,
)

pytestmark = pytest.mark.system


def test_pt_jobs_have_final_and_best_model_when_finished(flare_system, tmp_path):
    """5 unmodified PyTorch FedAvg jobs (Client API, external process): 0 misses."""
    folder = pt_fedavg_job(tmp_path)
    seen = []
    for _ in range(5):
        job_id, status, components = run_and_catch_finish(flare_system, folder)
        seen.append((job_id, status, sorted(components)))
    misses = [s for s in seen if s[1] != "FINISHED:COMPLETED" or GLOBAL not in s[2] or BEST not in s[2]]
    assert not misses, f"jobs without both models at FINISHED: {misses}\n{flare_system.tail_console()}"

    for job_id, _, _ in seen:
        store = flare_system.job_store_dir(job_id)
        files = workspace_files(flare_system, job_id)
        records = job_meta(flare_system, job_id)["component_records"]
        for component, file_name in ((GLOBAL, "FL_global_model.pt"), (BEST, "best_FL_global_model.pt")):
            stored = (store / component).read_bytes()
            assert stored == member(files, f"app_server/{file_name}"), f"{job_id} {component} differs"
            record = records[component]
            assert record["file_name"] == file_name
            assert record["size"] == len(stored)
            assert record["sha256"] == hashlib.sha256(stored).hexdigest()
            assert record["transfer"] in ("link", "copy")
        state = torch.load(io.BytesIO((store / GLOBAL).read_bytes()), weights_only=True)
        assert "model" in state and state["model"]["weight"].shape == (2, 4)


def test_pt_job_publishes_with_the_sha256_computed_while_it_trained(flare_system, tmp_path):
    """A real PyTorch FedAvg job: its server process hashed the persistor's files after each save,
    so at job end the store linked them and took that sha256 instead of reading them again."""
    job_id, status, components = run_and_catch_finish(flare_system, pt_fedavg_job(tmp_path, name="pt_prehash"))
    assert status == "FINISHED:COMPLETED" and GLOBAL in components and BEST in components, components

    log = flare_system.console_log.read_text(errors="replace")
    store = flare_system.job_store_dir(job_id)
    records = job_meta(flare_system, job_id)["component_records"]
    for component, kind, file_name in (
        (GLOBAL, "global", "FL_global_model.pt"),
        (BEST, "best", "best_FL_global_model.pt"),
    ):
        stored = (store / component).read_bytes()
        sha = hashlib.sha256(stored).hexdigest()
        record = records[component]
        assert (record["sha256"], record["size"], record["hashed"], record["transfer"]) == (
            sha,
            len(stored),
            "job",
            "link",
        )
        # the job's pre-hasher measured the block hashes too (one block: the file is under 64 MiB)
        assert (record["block_size"], record["block_sha256"]) == (64 * 1024 * 1024, [sha])
        stored_line = (
            f"Stored {kind} model '{file_name}' of job {job_id} as {component} "
            f"({len(stored)} bytes, sha256 {sha[:12]} from the job process, link)"
        )
        assert stored_line in log, flare_system.tail_console()
        prehashed = rf"Pre-hashed \S*/{job_id}/\S*/{re.escape(file_name)} \({len(stored)} bytes, sha256 {sha[:12]}\) in \d+\.\d\ds"
        assert re.search(prehashed, log), f"no pre-hash of {file_name} with the stored sha256"
    assert f"Pre-hashing of job {job_id}'s model files was done (" in log
    assert not re.search(rf"of job {job_id} as \S+ \(\d+ bytes, sha256 \w+ computed by the store", log)
    assert f"Not using the pre-computed sha256 of global model 'FL_global_model.pt' of job {job_id}" not in log


def test_model_changed_after_its_last_persist_is_hashed_by_the_store(flare_system, tmp_path):
    """The job rewrites its model in place after the last persist event, same size, mtime restored:
    the pre-computed sha256 is not used (ctime changed), the store hashes the file it stores."""
    folder = file_model_job(
        tmp_path, name="rewritten_model", size_mb=4, persist_events=2, train_seconds=2.0, rewrite=True
    )
    job_id, status, components = run_and_catch_finish(flare_system, folder)
    assert status == "FINISHED:COMPLETED" and GLOBAL in components, components

    log = flare_system.console_log.read_text(errors="replace")
    wrote = re.search(rf"TEST wrote (\S*/{job_id}/\S*/FL_global_model\.pt) with sha256 ([0-9a-f]{{64}})", log)
    assert wrote, flare_system.tail_console()
    path, original = wrote.groups()
    rewrote = re.search(
        rf"TEST rewrote {re.escape(path)} in place: same size True, same mtime True, same ctime False, "
        rf"sha256 ([0-9a-f]{{64}})",
        log,
    )
    assert rewrote, flare_system.tail_console()
    changed = rewrote.group(1)
    assert changed != original
    # hashed once, before the rewrite: the second persist event found the file unchanged
    assert re.findall(rf"Pre-hashed {re.escape(path)} \((\d+) bytes, sha256 (\w+)\) in", log) == [
        (str(4 << 20), original[:12])
    ]
    assert (
        f"Not using the pre-computed sha256 of global model 'FL_global_model.pt' of job {job_id}: "
        f"the file changed after it was hashed"
    ) in log

    stored = (flare_system.job_store_dir(job_id) / GLOBAL).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == changed
    record = job_meta(flare_system, job_id)["component_records"][GLOBAL]
    assert (record["sha256"], record["size"], record["hashed"], record["transfer"]) == (
        changed,
        4 << 20,
        "store",
        "link",
    )
    assert (
        f"Stored global model 'FL_global_model.pt' of job {job_id} as {GLOBAL} "
        f"({4 << 20} bytes, sha256 {changed[:12]} computed by the store, link)"
    ) in log


def test_numpy_job_publishes_last_global_model_via_fallback(flare_system, tmp_path):
    """NPModelPersistor has no inventory: the last global model from the FL context is stored."""
    job_id, status, components = run_and_catch_finish(flare_system, np_fedavg_job(tmp_path))
    # NPModelPersistor writes no best model: the fork keeps one (best_model_keeper)
    assert status == "FINISHED:COMPLETED" and GLOBAL in components and BEST in components, components

    record = job_meta(flare_system, job_id)["component_records"][GLOBAL]
    assert (record["file_name"], record["format"]) == ("global_model.npz", "numpy_npz")
    published = np.load(flare_system.job_store_dir(job_id) / GLOBAL, allow_pickle=False)
    persisted = np.load(io.BytesIO(member(workspace_files(flare_system, job_id), "models/server.npy")))
    np.testing.assert_array_equal(published["numpy_key"], persisted)
    np.testing.assert_array_equal(published["numpy_key"], [[3.0, 4.0], [5.0, 6.0]])
    log = flare_system.console_log.read_text(errors="replace")
    assert f"Added the model publisher to job {job_id}" in log
    assert f"Published global model 'global_model.npz' of job {job_id} as {GLOBAL} (local, " in log
    # the fallback's temporary file is not left in the workspace archive
    assert not [n for n in workspace_files(flare_system, job_id) if ".model_publish" in n]


ATTACKER = '''
import os

from nvflare.apis.event_type import EventType
from nvflare.apis.fl_component import FLComponent
from nvflare.app_common.model_publishing.model_publish_defs import KIND_GLOBAL, MODE_LOCAL, Key, file_identity, send_publish_request


class PublishAttacker(FLComponent):
    """A client-side job component that tries to put a model into the job store."""

    def handle_event(self, event_type, fl_ctx):
        if event_type != EventType.START_RUN:
            return
        engine = fl_ctx.get_engine()
        path = os.path.join(engine.get_workspace().get_run_dir(fl_ctx.get_job_id()), "evil.pt")
        with open(path, "wb") as f:
            f.write(b"not your model")
        request = {Key.KIND: KIND_GLOBAL, Key.FILE_NAME: "evil.pt", Key.FORMAT: "", Key.MODE: MODE_LOCAL,
                   Key.PATH: path, Key.IDENTITY: file_identity(path)}
        reply = send_publish_request(engine.get_cell(), request, 30.0)
        self.log_info(fl_ctx, f"PUBLISH ATTEMPT REPLY: {reply}")
'''


@pytest.fixture(scope="module")
def attacked_job(flare_system, tmp_path_factory):
    """A numpy job that turns publishing off and whose clients try to publish a model themselves."""
    folder = np_fedavg_job(tmp_path_factory.mktemp("attack"), name="np_attack", num_rounds=1)
    add_server_component(folder, {"id": "model_publisher", "path": PUBLISHER, "args": {"enabled": False}})
    (folder / "app" / "custom" / "publish_attacker.py").write_text(ATTACKER)
    client_config = folder / "app" / "config" / "config_fed_client.json"
    config = json.loads(client_config.read_text())
    config["components"].append({"id": "attacker", "path": "publish_attacker.PublishAttacker", "args": {}})
    client_config.write_text(json.dumps(config, indent=2))
    job_id, status, components = run_and_catch_finish(flare_system, folder)
    return job_id, status, components


def test_client_side_publish_is_refused_and_store_unchanged(flare_system, attacked_job, reliability):
    job_id, status, components = attacked_job
    log = flare_system.console_log.read_text(errors="replace")
    audit = flare_system.audit_log.read_text(errors="replace")
    for site in ("site-1", "site-2"):
        refusal = (
            f"request from cell '{site}.{job_id}' (authenticated as '{site}'): "
            f"only a job's own server process may publish models into its job store"
        )
        assert (
            f"Refused to store a model: {refusal}" in log
        ), f"no refusal logged for {site}\n{flare_system.tail_console()}"
        assert f"[U:{site}][A:model_fork.publish_job_model from {site}.{job_id}] REFUSED: {refusal}" in audit, site
    assert status == "FINISHED:COMPLETED"
    assert not [c for c in components if c.startswith("MODEL_")]
    assert not [p.name for p in flare_system.job_store_dir(job_id).iterdir() if p.name.startswith("MODEL_")]
    assert "component_records" not in job_meta(flare_system, job_id)
    reliability.record(
        "10b",
        "refused: `Refused to store a model: request from cell '<site>.<job>' (authenticated as '<site>'): only a "
        "job's own server process may publish models into its job store` in the server log and as a REFUSED line in "
        "its audit.log; no MODEL_ component, no record",
    )


def test_job_can_turn_publishing_off(flare_system, attacked_job):
    job_id, status, components = attacked_job
    log = flare_system.console_log.read_text(errors="replace")
    assert f"Model publishing is turned off for job {job_id} by the job's configuration" in log
    assert f"Added the model publisher to job {job_id}" not in log
    assert not [c for c in components if c.startswith("MODEL_")]
