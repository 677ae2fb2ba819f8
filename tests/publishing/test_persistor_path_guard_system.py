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
"""A job's config cannot make a component read or write files outside the job (persistor_path_guard).

A real provisioned POC system (server, two sites, leads of two orgs, upstream's default
authorization policy) whose operator allowed PTFileModelPersistor for config-only jobs and
keeps pre-trained checkpoints in a directory listed in model_persistor_allowed_dirs (the
setting's first name) and models for evaluation in one listed in job_read_allowed_dirs.

Persistors: a lead's config-only job that starts from such a checkpoint trains one round
and saves its model (the job every persistor attack below is a variant of, so each attack
would read or write for real if the guard let it through). The attacks: model file names
that are absolute paths (another job's stored model, a file in the allowed directory) or
climb out with ``..`` (the server's startup/fed_server.json), an environment.json
checkpoint folder outside, and another org's lead naming a finished job's stored model as
its checkpoint (absolute, and through ``..``).

Every other component (default allow-list only): another org's lead aims
CrossSiteModelEval's NPModelLocator at a finished numpy job's stored model (without the
guard the server loads it, keeps it in the attacker's run folder and sends it to both
sites); the same locator aimed at the operator's evaluation folder works; and a client-side
NPFileModelPersistor aimed at the site's key and another job's folder is refused at the
client.
"""

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from flare_system import FlareSystem
from job_components import LEAD, OTHER_ORG_LEAD, add_role_users
from model_jobs import GLOBAL, PUBLISHER, server_config_path
from path_guard_jobs import GUARD_RULE as RULE
from path_guard_jobs import client_persistor_job, cse_locator_job, files_holding, numpy_victim_job, victim_weights
from publish_attacks import PT_PERSISTOR, log_of, pt_config_only_job, run_folder, stored_models

pytestmark = pytest.mark.system

LOADING = "Loading checkpoint from "


def refusal(job_id, setting, value, access, real, run, who="persistor 'persistor' (PTFileModelPersistor)") -> str:
    return (
        f"Job {job_id}: refused {who}: {setting} {value!r} ({access}) "
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
def evaluation_models(tmp_path_factory):
    """The operator's folder of models for evaluation (job_read_allowed_dirs): server.npy."""
    folder = tmp_path_factory.mktemp("evaluation_models")
    np.save(folder / "server.npy", np.full((3, 3), 7.25, dtype=np.float32))
    return folder


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, pretrained, evaluation_models):
    from nvflare.app_common.default_component_policy import DEFAULT_CLASS_ALLOW_LIST

    system = FlareSystem(tmp_path_factory.mktemp("flare_persistor_guard"), project_edit=add_role_users)
    try:
        system.prepare()
        allowed = sorted(set(DEFAULT_CLASS_ALLOW_LIST) | {PT_PERSISTOR, "torch.nn.Linear", PUBLISHER})
        system.set_server_settings(
            class_allow_list=allowed,
            model_persistor_allowed_dirs=[str(pretrained)],
            job_read_allowed_dirs=[str(evaluation_models)],
        )
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


def test_checkpoint_in_an_allowed_dir_is_loaded_and_a_normal_job_is_unaffected(
    guarded, pretrained, evaluation_models, normal_job
):
    job_id, meta = normal_job
    assert meta["status"] == "FINISHED:COMPLETED", f"{meta}\n{guarded.tail_console()}"
    log = log_of(guarded)
    assert f"{LOADING}{pretrained / 'init.pt'}" in log
    assert f"Job {job_id}: refused persistor" not in log
    assert f"Job components may read files from (job_read_allowed_dirs): {evaluation_models}, {pretrained}" in log
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


# -- every other component: CrossSiteModelEval + NPModelLocator, and a client's persistor ---------------
LOADED = "Loaded server model from "


@pytest.fixture(scope="module")
def numpy_victim(guarded, tmp_path_factory):
    """A lead's finished numpy job: its stored MODEL_global_model is the victim's model (a .npy file)."""
    job_id, meta = guarded.submit_and_wait(numpy_victim_job(tmp_path_factory.mktemp("np_victim")), user=LEAD)
    assert meta["status"] == "FINISHED:COMPLETED", f"{meta}\n{guarded.tail_console()}"
    stored = guarded.job_store_dir(job_id) / GLOBAL
    np.testing.assert_array_equal(np.load(stored), victim_weights())
    return job_id, os.path.realpath(stored)


def site_dirs(system) -> list:
    return [system.prod / f"site-{i + 1}" for i in range(system.n_clients)]


def attacker_download(system, job_id, tmp_path) -> Path:
    """The attacker's own job, as download_job gives it to them."""
    with system.session(OTHER_ORG_LEAD) as sess:
        return Path(sess.download_job_result(job_id, str(tmp_path / "download")))


def test_cse_locator_aimed_at_another_orgs_stored_model_is_refused_before_build(guarded, numpy_victim, tmp_path):
    victim, stored = numpy_victim
    victim_bytes = victim_weights().tobytes()
    job = cse_locator_job(tmp_path, "steal_by_cse", model_name=stored)
    job_id, meta = guarded.submit_and_wait(job, user=OTHER_ORG_LEAD, timeout=120)

    assert meta["submitter_name"] == OTHER_ORG_LEAD
    assert meta["status"] == "FINISHED:EXECUTION_EXCEPTION", f"{meta}\n{guarded.tail_console()}"
    log = log_of(guarded)
    line = refusal(
        job_id,
        "model_name",
        stored,
        "read",
        stored,
        run_folder(guarded, job_id),
        who="model locator 'model_locator' (NPModelLocator)",
    )
    assert line in log, guarded.tail_console()
    assert "component not authorized: refused model locator 'model_locator'" in log
    assert f"{LOADED}{stored}" not in log, "the locator was built and loaded the victim's model"
    # nothing of the victim's model in what the attacker downloads, at any site, or in the attacker's store folder
    download = attacker_download(guarded, job_id, tmp_path)
    assert files_holding(download, victim_bytes) == []
    assert [p for s in site_dirs(guarded) for p in files_holding(s / job_id, victim_bytes)] == []
    assert store_files_equal_to(guarded, job_id, open(stored, "rb").read()) == []
    # the refusal is audited in the job's audit file, under the submitter's name
    audits = [p for p in download.rglob("audit.log") if "component_authorization.path_refused" in p.read_text()]
    assert audits and OTHER_ORG_LEAD in audits[0].read_text(), list(download.rglob("*"))


def test_the_same_locator_reads_a_model_in_the_operators_allowed_folder(guarded, evaluation_models, tmp_path):
    model = os.path.realpath(evaluation_models / "server.npy")
    job_id, meta = guarded.submit_and_wait(cse_locator_job(tmp_path, "evaluate", model_name=model), user=OTHER_ORG_LEAD)
    assert meta["status"] == "FINISHED:COMPLETED", f"{meta}\n{guarded.tail_console()}"
    log = log_of(guarded)
    assert f"{LOADED}{model}." in log
    assert f"Job {job_id}: refused" not in log
    download = attacker_download(guarded, job_id, tmp_path)
    weights = np.full((3, 3), 7.25, dtype=np.float32).tobytes()
    assert [Path(p).name for p in files_holding(download, weights)] == ["SRV_server"]
    (results,) = download.rglob("cross_val_results.json")
    assert sorted(json.loads(results.read_text())) == ["site-1", "site-2"]  # both sites validated it


def test_client_side_persistor_aimed_at_the_sites_key_and_another_job_is_refused_at_the_client(
    guarded, numpy_victim, tmp_path
):
    """{WORKSPACE} is each site's own workspace: one config names every site's key, and its folder of the
    victim's job (the persistor's model_dir: read from, and written into)."""
    victim, _ = numpy_victim
    args = {
        "source_ckpt_file_full_name": "{WORKSPACE}/startup/client.key",
        "model_dir": "{WORKSPACE}/" + victim,
        "model_file_name": "log.txt",
    }
    job_id, meta = guarded.submit_and_wait(client_persistor_job(tmp_path, "client_steal", args), user=OTHER_ORG_LEAD)
    assert meta["status"] != "FINISHED:COMPLETED", f"{meta}\n{guarded.tail_console()}"
    who = "persistor 'persistor' (NPFileModelPersistor)"
    for site in site_dirs(guarded):
        ws = os.path.realpath(site)
        run = os.path.join(ws, job_id)
        log = (site / job_id / "log.txt").read_text(errors="replace")
        key, theirs = f"{ws}/startup/client.key", f"{ws}/{victim}"
        for setting, value, access, real in (
            ("source_ckpt_file_full_name", key, "read", key),
            ("model_dir/model_file_name", f"{theirs}/log.txt", "read", f"{theirs}/log.txt"),
            ("model_dir/last_global_model_file_name", f"{theirs}/last_global_model.npy", "write", None),
        ):
            line = refusal(job_id, setting, value, access, real or value, run, who=who)
            assert line in log, log[-3000:]
        assert not (site / victim / "last_global_model.npy").exists()
        assert files_holding(site / job_id, (site / "startup" / "client.key").read_bytes()) == []
