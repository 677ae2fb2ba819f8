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
"""A job's persistor config cannot make the server read or write files outside the job (persistor_path_guard).

A real provisioned POC system (server, two sites, leads of two orgs) whose operator allowed
PTFileModelPersistor for config-only jobs and keeps pre-trained checkpoints in one
directory listed in model_persistor_allowed_dirs. A lead's config-only job that starts
from such a checkpoint trains one round and saves its model (the job every attack below is
a variant of, so each attack would read or write for real if the guard let it through).
The attacks: model file names that are absolute paths (another job's stored model, a file
in the allowed directory) or climb out with ``..`` (the server's startup/fed_server.json),
an environment.json checkpoint folder outside, and another org's lead naming a finished
job's stored model as its checkpoint (absolute, and through ``..``).
"""

import hashlib
import json
import os
import zipfile

import pytest
from flare_system import FlareSystem
from job_components import LEAD, OTHER_ORG_LEAD, add_role_users
from model_jobs import GLOBAL, PUBLISHER, server_config_path
from publish_attacks import PT_PERSISTOR, log_of, pt_config_only_job, run_folder, stored_models

pytestmark = pytest.mark.system

RULE = (
    "a job's model persistor may write files only inside the job's own run folder, and read them only there "
    "or in a directory of the server setting model_persistor_allowed_dirs"
)
LOADING = "Loading checkpoint from "


def refusal(job_id, setting, value, access, real, run) -> str:
    return (
        f"Job {job_id}: refused persistor 'persistor' (PTFileModelPersistor): {setting} {value!r} ({access}) "
        f"resolves to {str(real)!r}, outside the job's run folder {str(run)!r}: {RULE}"
    )


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """The operator's checkpoint folder: init.pt holds one numpy-trainer-shaped weight."""
    import torch

    folder = tmp_path_factory.mktemp("pretrained")
    torch.save({"numpy_key": torch.ones(3, 3)}, folder / "init.pt")
    return folder


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, pretrained):
    from nvflare.app_common.default_component_policy import DEFAULT_CLASS_ALLOW_LIST

    system = FlareSystem(tmp_path_factory.mktemp("flare_persistor_guard"), project_edit=add_role_users)
    try:
        system.prepare()
        allowed = sorted(set(DEFAULT_CLASS_ALLOW_LIST) | {PT_PERSISTOR, "torch.nn.Linear", PUBLISHER})
        system.set_server_settings(class_allow_list=allowed, model_persistor_allowed_dirs=[str(pretrained)])
        system.start()
        yield system
    finally:
        system.stop()


def training_job(root, name, env: dict = None, **persistor_args):
    """pt_config_only_job with one round of numpy training on the sites (so the persistor saves its model)."""
    job = pt_config_only_job(root, name, **persistor_args)
    config_file = server_config_path(job)
    config = json.loads(config_file.read_text())
    config["workflows"][0]["args"]["num_rounds"] = 1
    config_file.write_text(json.dumps(config, indent=2))
    if env is not None:
        (config_file.parent / "environment.json").write_text(json.dumps(env))
    return job


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def store_files_equal_to(system, job_id, data: bytes) -> list:
    """Files of the job's store folder, and members of its workspace archive, whose bytes are ``data``."""
    found = []
    folder = system.job_store_dir(job_id)
    for p in folder.iterdir() if folder.is_dir() else []:
        if p.is_file() and p.read_bytes() == data:
            found.append(p.name)
        if p.name == "workspace" and zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                found += [n for n in z.namelist() if not n.endswith("/") and z.read(n) == data]
    return found


@pytest.fixture(scope="module")
def normal_job(guarded, pretrained, tmp_path_factory):
    """A lead's config-only job that starts from the allowed checkpoint; it is every later attack's victim."""
    ckpt = str(pretrained / "init.pt")
    job = training_job(tmp_path_factory.mktemp("normal"), "from_pretrained", source_ckpt_file_full_name=ckpt)
    job_id, meta = guarded.submit_and_wait(job, user=LEAD)
    return job_id, meta


def refused_job_outcome(system, job_id, meta, before_loading: int):
    """What every refused job shows: it never ran, nothing was loaded, nothing was published."""
    assert meta["status"] == "FINISHED:EXECUTION_EXCEPTION", f"{meta}\n{system.tail_console()}"
    log = log_of(system)
    assert log.count(LOADING) == before_loading, "the persistor loaded a checkpoint"
    assert f"component not authorized: refused persistor 'persistor'" in log, system.tail_console()
    assert stored_models(system, job_id) == []
    return log


def test_checkpoint_in_an_allowed_dir_is_loaded_and_a_normal_job_is_unaffected(guarded, pretrained, normal_job):
    job_id, meta = normal_job
    assert meta["status"] == "FINISHED:COMPLETED", f"{meta}\n{guarded.tail_console()}"
    log = log_of(guarded)
    assert f"{LOADING}{pretrained / 'init.pt'}" in log
    assert f"Job {job_id}: refused persistor" not in log
    assert f"Job persistors may read checkpoints from: {pretrained}" in log
    assert stored_models(guarded, job_id) == [GLOBAL]
    import torch

    model = torch.load(guarded.job_store_dir(job_id) / GLOBAL, weights_only=True)
    weights = model.get("model", model)
    assert list(weights) == ["numpy_key"], model  # the allowed checkpoint's weights, trained one round


def test_write_to_absolute_paths_is_refused_before_the_job_runs(guarded, pretrained, normal_job, tmp_path):
    """global_model_file_name = another job's stored model; best_global_model_file_name = a file in the
    allowed (read-only) checkpoint folder: refused, both files unchanged, nothing loaded."""
    victim, _ = normal_job
    target = os.path.realpath(guarded.job_store_dir(victim) / GLOBAL)
    in_allowed = os.path.realpath(pretrained / "init.pt")
    before = {p: sha256(p) for p in (target, in_allowed)}
    loading = log_of(guarded).count(LOADING)
    job = training_job(
        tmp_path,
        "overwrite",
        source_ckpt_file_full_name=in_allowed,
        global_model_file_name=target,
        best_global_model_file_name=in_allowed,
    )
    job_id, meta = guarded.submit_and_wait(job, user=LEAD)

    log = refused_job_outcome(guarded, job_id, meta, loading)
    run = run_folder(guarded, job_id)
    assert refusal(job_id, "global_model_file_name", target, "write", target, run) in log, guarded.tail_console()
    assert refusal(job_id, "best_global_model_file_name", in_allowed, "write", in_allowed, run) in log
    assert f"source_ckpt_file_full_name {in_allowed!r}" not in log  # the read from the allowed dir was fine
    assert {p: sha256(p) for p in before} == before


def test_write_through_dotdot_and_environment_json_is_refused(guarded, pretrained, tmp_path):
    """best_global_model_file_name climbs to the server's startup/fed_server.json; another job's
    environment.json sets APP_CKPT_DIR (the folder the persistor creates and saves into) outside."""
    fed_server = os.path.realpath(guarded.server_dir / "startup" / "fed_server.json")
    before = sha256(fed_server)
    ckpt = str(pretrained / "init.pt")
    loading = log_of(guarded).count(LOADING)
    job = training_job(
        tmp_path, "dotdot", source_ckpt_file_full_name=ckpt, global_model_file_name="../../startup/fed_server.json"
    )
    job_id, meta = guarded.submit_and_wait(job, user=LEAD)
    log = refused_job_outcome(guarded, job_id, meta, loading)
    run = run_folder(guarded, job_id)
    assert (
        refusal(job_id, "global_model_file_name", "../../startup/fed_server.json", "write", fed_server, run) in log
    ), guarded.tail_console()
    assert sha256(fed_server) == before

    planted = os.path.realpath(tmp_path) + "/planted_dir"
    loading = log_of(guarded).count(LOADING)
    job = training_job(tmp_path / "env", "env_dir", env={"APP_CKPT_DIR": planted}, source_ckpt_file_full_name=ckpt)
    job_id, meta = guarded.submit_and_wait(job, user=LEAD)
    log = refused_job_outcome(guarded, job_id, meta, loading)
    run = run_folder(guarded, job_id)
    assert refusal(job_id, "environment.json APP_CKPT_DIR", planted, "write", planted, run) in log
    saved = os.path.join(planted, "FL_global_model.pt")
    assert refusal(job_id, "global_model_file_name", "FL_global_model.pt", "write", saved, run) in log
    assert not os.path.exists(planted), "the persistor created its folder outside the run folder"


def test_other_orgs_lead_cannot_load_another_jobs_stored_model(guarded, normal_job, tmp_path):
    """source_ckpt_file_full_name = a finished job's stored MODEL_global_model (absolute), and
    environment.json's APP_CKPT = the same file through ``..``: refused, nothing read or disclosed."""
    victim, _ = normal_job
    target = os.path.realpath(guarded.job_store_dir(victim) / GLOBAL)
    data = open(target, "rb").read()
    # relative to the attacker's app folder <server>/<job>/app_server: climbs out with ..
    dotdot = os.path.relpath(target, os.path.join(os.path.realpath(guarded.server_dir), "<job>", "app_server"))
    loading = log_of(guarded).count(LOADING)
    job = training_job(tmp_path, "steal", env={"APP_CKPT": dotdot}, source_ckpt_file_full_name=target)
    job_id, meta = guarded.submit_and_wait(job, user=OTHER_ORG_LEAD)

    assert meta["submitter_name"] == OTHER_ORG_LEAD
    log = refused_job_outcome(guarded, job_id, meta, loading)
    run = run_folder(guarded, job_id)
    assert refusal(job_id, "source_ckpt_file_full_name", target, "read", target, run) in log, guarded.tail_console()
    assert refusal(job_id, "environment.json APP_CKPT", dotdot, "read", target, run) in log
    assert store_files_equal_to(guarded, job_id, data) == []
    with guarded.session() as sess:
        assert not [c for c in sess.list_job_components(job_id) if c.startswith("MODEL_")]
    assert open(target, "rb").read() == data
