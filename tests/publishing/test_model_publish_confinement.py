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
"""A job can publish only regular files inside its own run folder (issue 11, section 1).

A real provisioned POC system (server, two sites, project_admin, leads of two orgs) whose
operator allowed PTFileModelPersistor for config-only jobs (class_allow_list) and turned on
model_publish_drop_from_workspace, the setting that deletes published files. The attacks:
a lead's config-only job naming the server's private key and a file outside as its model
files; another org's lead naming a finished job's stored model (and, with ``..``, its best
model) with deletion on - both now stopped before the job starts by persistor_path_guard
(test_persistor_path_guard_system.py has its own attacks), so no publisher ever sees those
paths; symlinks out of the run folder (custom code, which the guard's config check cannot
see) and publish requests sent straight to the store by the job's own server process show
the publisher's and the store's own rule.
"""

import hashlib
import os
import re
import zipfile

import pytest
from flare_system import FlareSystem
from job_components import LEAD, OTHER_ORG_LEAD, add_role_users
from model_jobs import BEST, GLOBAL, PUBLISHER, job_meta, pt_fedavg_job
from path_guard_jobs import GUARD_RULE
from publish_attacks import (
    PT_PERSISTOR,
    RAW_OUTCOME,
    assert_refused_by_store,
    log_of,
    outside_refusal,
    pt_config_only_job,
    raw_attack,
    run_folder,
    server_key,
    stored_models,
    symlink_job,
)

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def guarded_system(tmp_path_factory):
    from nvflare.app_common.default_component_policy import DEFAULT_CLASS_ALLOW_LIST

    system = FlareSystem(tmp_path_factory.mktemp("flare_guarded"), project_edit=add_role_users)
    try:
        system.prepare()
        allowed = sorted(set(DEFAULT_CLASS_ALLOW_LIST) | {PT_PERSISTOR, "torch.nn.Linear", PUBLISHER})
        system.set_server_settings(class_allow_list=allowed, model_publish_drop_from_workspace=True)
        system.start()
        yield system
    finally:
        system.stop()


def store_holds(system, job_id, data: bytes) -> list:
    """Files of the job's store folder (and members of its workspace archive) equal to ``data``."""
    found = []
    for p in system.job_store_dir(job_id).iterdir():
        if p.is_file() and p.read_bytes() == data:
            found.append(p.name)
    with zipfile.ZipFile(system.job_store_dir(job_id) / "workspace") as z:
        found += [n for n in z.namelist() if not n.endswith("/") and z.read(n) == data]
    return found


@pytest.fixture(scope="module")
def legit_job(guarded_system, tmp_path_factory):
    """An unmodified PyTorch FedAvg job on the guarded system: both models published by link."""
    job_id, meta = guarded_system.submit_and_wait(pt_fedavg_job(tmp_path_factory.mktemp("legit")))
    return job_id, meta


def test_legit_pt_job_publishes_by_link_and_drops_only_its_own_files(guarded_system, legit_job):
    job_id, meta = legit_job
    assert meta["status"] == "FINISHED:COMPLETED", meta
    assert stored_models(guarded_system, job_id) == [BEST, GLOBAL]
    records = job_meta(guarded_system, job_id)["component_records"]
    log = log_of(guarded_system)
    run = run_folder(guarded_system, job_id)
    for component, file_name in ((GLOBAL, "FL_global_model.pt"), (BEST, "best_FL_global_model.pt")):
        data = (guarded_system.job_store_dir(job_id) / component).read_bytes()
        assert records[component]["transfer"] == "link"
        assert records[component]["sha256"] == hashlib.sha256(data).hexdigest()
        assert f"Removed {run}/app_server/{file_name} from the job workspace: the job store holds it" in log
    with zipfile.ZipFile(guarded_system.job_store_dir(job_id) / "workspace") as z:
        names = z.namelist()
    assert not [n for n in names if n.endswith(("FL_global_model.pt", "best_FL_global_model.pt"))], names
    assert f"Refused to publish" not in "".join(l for l in log.splitlines() if job_id in l)


def guard_refusal(job_id, setting, value, real, run) -> str:
    """persistor_path_guard's line: the job's persistor is refused before it is built."""
    return (
        f"Job {job_id}: refused persistor 'persistor' (PTFileModelPersistor): {setting} {value!r} (write) resolves "
        f"to {str(real)!r}, outside the job's run folder {str(run)!r}: {GUARD_RULE}"
    )


def test_lead_config_only_job_cannot_publish_the_server_key(guarded_system, tmp_path, reliability):
    """(a) best_global_model_file_name = the server's startup/server.key, global_model_file_name =
    a file outside the run folder: the job is refused before its persistor exists, nothing stored."""
    key = server_key(guarded_system)
    key_bytes = open(key, "rb").read()
    secret = tmp_path / "outside_secret.pt"
    secret.write_bytes(b"secret bytes outside any run folder")
    secret = os.path.realpath(secret)
    job = pt_config_only_job(tmp_path, "steal_key", best_global_model_file_name=key, global_model_file_name=secret)
    job_id, meta = guarded_system.submit_and_wait(job, user=LEAD)

    assert meta["status"] == "FINISHED:EXECUTION_EXCEPTION", f"{meta}\n{guarded_system.tail_console()}"
    assert meta["submitter_name"] == LEAD
    assert stored_models(guarded_system, job_id) == []
    assert store_holds(guarded_system, job_id, key_bytes) == []
    assert "component_records" not in job_meta(guarded_system, job_id)
    log = log_of(guarded_system)
    run = run_folder(guarded_system, job_id)
    assert guard_refusal(job_id, "best_global_model_file_name", key, key, run) in log, guarded_system.tail_console()
    assert guard_refusal(job_id, "global_model_file_name", secret, secret, run) in log, guarded_system.tail_console()
    assert f"of job {job_id}:" not in log  # no publisher ran: the job never started
    assert open(key, "rb").read() == key_bytes and open(secret, "rb").read() == b"secret bytes outside any run folder"
    with guarded_system.session() as sess:
        assert not [c for c in sess.list_job_components(job_id) if c.startswith("MODEL_")]
    reliability.record(
        "P1",
        "refused before the job starts (persistor_path_guard): `Job <job>: refused persistor 'persistor' "
        "(PTFileModelPersistor): best_global_model_file_name '<kit>/startup/server.key' (write) resolves to "
        "'<kit>/startup/server.key', outside the job's run folder '<kit>/<job>': a job's components may write "
        "files only inside the job's own run folder, ...` (same for the global model's path); job "
        "FINISHED:EXECUTION_EXCEPTION; no MODEL_ component, no record; the key file unchanged",
    )


def test_other_orgs_lead_cannot_publish_or_delete_another_jobs_model(guarded_system, legit_job, tmp_path, reliability):
    """(b) another org's lead names a finished job's stored models (absolute, and through `..`) with
    model_publish_drop_from_workspace=true: refused before the job starts, both files still there, unchanged."""
    victim, _ = legit_job
    target = os.path.realpath(guarded_system.job_store_dir(victim) / GLOBAL)
    target_best = os.path.realpath(guarded_system.job_store_dir(victim) / BEST)
    before = {p: open(p, "rb").read() for p in (target, target_best)}
    # relative to the persistor's folder <run folder>/app_server: climbs out with ..
    dotdot = os.path.relpath(target_best, os.path.join(str(guarded_system.server_dir), "<job>", "app_server"))
    job = pt_config_only_job(tmp_path, "steal_model", best_global_model_file_name=target, global_model_file_name=dotdot)
    job_id, meta = guarded_system.submit_and_wait(job, user=OTHER_ORG_LEAD)

    assert meta["status"] == "FINISHED:EXECUTION_EXCEPTION", f"{meta}\n{guarded_system.tail_console()}"
    for path, data in before.items():
        assert open(path, "rb").read() == data, f"{path} changed or vanished"
    assert stored_models(guarded_system, job_id) == []
    log = log_of(guarded_system)
    run = run_folder(guarded_system, job_id)
    assert (
        guard_refusal(job_id, "best_global_model_file_name", target, target, run) in log
    ), guarded_system.tail_console()
    assert (
        guard_refusal(job_id, "global_model_file_name", dotdot, target_best, run) in log
    ), guarded_system.tail_console()
    assert f"Removed {target}" not in log and f"Removed {target_best}" not in log
    reliability.record(
        "P2",
        "refused the same way before the job starts (`... '<jobs-storage>/<other job>/MODEL_global_model' (write) "
        "resolves to ..., outside the job's run folder ...`, also through `../..`); both of the other job's models "
        "still exist, byte-identical; no MODEL_ component for the attacker's job (FINISHED:EXECUTION_EXCEPTION)",
    )


def test_symlink_out_of_the_run_folder_is_refused_and_one_inside_is_published(guarded_system, tmp_path, reliability):
    """(c) the run folder holds FL_global_model.pt -> model.bin (inside) and best_FL_global_model.pt ->
    a file outside: the first is published (and removed with drop-from-workspace), the second refused."""
    secret = tmp_path / "outside_target.bin"
    secret.write_bytes(b"outside the run folder")
    secret = os.path.realpath(secret)
    job_id, meta = guarded_system.submit_and_wait(symlink_job(tmp_path, secret))
    assert meta["status"] == "FINISHED:COMPLETED", f"{meta}\n{guarded_system.tail_console()}"

    log = log_of(guarded_system)
    run = run_folder(guarded_system, job_id)
    sha = re.findall(r"TEST model.bin sha256 ([0-9a-f]{64})", log)
    assert len(sha) == 1, guarded_system.tail_console()
    assert stored_models(guarded_system, job_id) == [GLOBAL]
    stored = (guarded_system.job_store_dir(job_id) / GLOBAL).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == sha[0]
    record = job_meta(guarded_system, job_id)["component_records"][GLOBAL]
    assert (record["file_name"], record["transfer"]) == ("FL_global_model.pt", "link")
    link = f"{run}/app_server/best_FL_global_model.pt"
    assert (
        f"Refused to publish best model 'best_FL_global_model.pt' of job {job_id}: {outside_refusal(link, secret, run)}"
    ) in log, guarded_system.tail_console()
    assert f"Removed {run}/app_server/model.bin from the job workspace: the job store holds it" in log
    assert open(secret, "rb").read() == b"outside the run folder"
    reliability.record(
        "P3",
        "the symlink to a file inside is published (`link`) and only its target inside the run folder is removed; "
        "the symlink out is refused (`... '<run>/app_server/best_FL_global_model.pt' resolves to '<outside file>', "
        "outside the job's run folder ...`); the outside file untouched",
    )


def test_store_refuses_raw_requests_for_files_outside_the_run_folder(guarded_system, tmp_path, reliability):
    """(d) the job's own server process asks the store for the key directly (model_publish_transfer=auto)."""
    job_id, expected = raw_attack(guarded_system, tmp_path)
    assert_refused_by_store(guarded_system, job_id, expected)
    reliability.record("P4", RAW_OUTCOME)
