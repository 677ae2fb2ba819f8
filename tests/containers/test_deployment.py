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
"""A docker deployment on the real engine trains, publishes and serves its models.

Provisioned by the fork, prepared with `nvflare deploy prepare` (runtime docker), the
server parent and both sites started as containers of the fork image by their kits' own
start_docker.sh (tests/support/container_deployment.py). Each job's server process is a
container that upstream's ServerDockerJobLauncher starts through the engine's Docker API
from the job's image; the fork's publisher links the models through the bind-mounted run
folder into the job store before the job shows FINISHED, and the fork's admin console,
on this host outside every container, downloads, verifies and loads them.
"""

import hashlib
import re
from pathlib import Path

import pytest
from admin_console import AdminConsole
from container_deployment import ADMIN, PARTICIPANTS, archive, job_meta, member
from container_engine import FORK_IMAGE, IMAGE_USER, PT_IMAGE, STOCK_PT_IMAGE, TF_IMAGE
from container_jobs import KEY_FINDER_REPORT, no_host_interpreter
from model_jobs import BEST, GLOBAL

pytestmark = [pytest.mark.system, pytest.mark.slow]

WORKSPACE = "/var/tmp/nvflare/workspace"
NOT_ADDED = (
    "Job {job_id}: model publisher not added: its server process runs from the job's own image "
    "(ServerDockerJobLauncher), which may not contain the nvflare model fork; the job runs as upstream and its "
    'models stay in its workspace. If the job images contain the fork, set "model_publish_job_images_have_fork": '
    "true in the server's local/resources.json (or NVFLARE_MODEL_PUBLISH_JOB_IMAGES_HAVE_FORK=true), or "
    '"model_publish_job_image_has_fork": true in the job\'s meta.json'
)


def console_download(deployment, job_id: str, component: str, dest: Path) -> Path:
    """The fork's fl_admin console of the admin kit, on this host (outside the containers)."""
    console = AdminConsole(deployment.admin_kit, env=deployment.console_env())
    try:
        # a provisioned kit's console asks for the user's name (uid_source user_input)
        if console.expect(r"(User Name: |\n> $)").endswith("User Name: "):
            console.send(ADMIN)
            console.expect(r"\n> $")
        out = console.run(f"download_job_component {job_id} {component} {dest}")
    finally:
        console.close()
    m = re.search(rf"^downloaded {component} of job {job_id} to (\S+) \((\d+) bytes in .*sha256 verified\)$", out, re.M)
    assert m, out
    return Path(m.group(1))


def assert_published_by_link(deployment, run, files: dict):
    """Stored before FINISHED, by hard link through the bind mount, and downloaded as stored."""
    assert run.status == "FINISHED:COMPLETED", deployment.parent_log()[-4000:]
    records = job_meta(deployment, run.job_id)["component_records"]
    log = deployment.parent_log()
    for component, file_name in files.items():
        assert component in run.components, run.components  # listed the moment the status read FINISHED
        record = records[component]
        assert record["transfer"] == "link", record
        # the parent signs with its dedicated key, so it hashes what it stores itself (model_signer)
        assert record["hashed"] == "store", record
        assert re.search(
            rf"Stored \w+ model '{re.escape(file_name)}' of job {run.job_id} as {component} \(\d+ bytes, sha256 "
            rf"{record['sha256'][:12]} computed by the store, link\)",
            log,
        ), log[-4000:]
        if component in run.watch.links:
            stored_inode, run_folder_inode, links = run.watch.linked[component]
            assert stored_inode == run_folder_inode and links >= 2, run.watch.linked
    return records


def assert_job_container(run, image: str):
    """Upstream's ServerDockerJobLauncher made it: the job's image, the parent's uid:gid, upstream's mounts."""
    container = run.watch.container
    assert container, "the job's server container was never seen running"
    assert container["Name"].lstrip("/") == f"server-{run.job_id}"
    assert container["Config"]["Image"] == image
    assert container["Config"]["User"] == IMAGE_USER
    mounts = {m["Destination"]: m for m in container["Mounts"]}
    assert set(mounts) >= {f"{WORKSPACE}/startup", f"{WORKSPACE}/local", f"{WORKSPACE}/{run.job_id}"}
    assert not mounts[f"{WORKSPACE}/startup"]["RW"] and mounts[f"{WORKSPACE}/{run.job_id}"]["RW"]
    assert "/var/run/docker.sock" not in mounts
    assert run.watch.processes == {"nvflare"}, run.watch.processes  # uid 1000 in the image
    # each site's job process too, in its own container (ClientDockerJobLauncher)
    assert run.watch.seen == {f"{p}-{run.job_id}" for p in PARTICIPANTS}, run.watch.seen


def test_parents_are_the_fork_image_run_by_the_kits_as_the_non_root_user(deployment, engine):
    for participant in PARTICIPANTS:
        container = engine.container(participant)
        assert container["Config"]["Image"] == FORK_IMAGE
        assert container["Config"]["User"] == IMAGE_USER  # start_docker.sh's --user $(id -u):$(id -g)
        assert container["HostConfig"]["GroupAdd"] == [str(engine.socket_gid)]
        assert engine.process_users(participant) == {"nvflare"}  # uid 1000 in the image
        assert f"Starting NVFlare {'server' if participant == 'server' else 'client'} {participant} with image" in (
            deployment.parent_log(participant)
        )
    # what the parent writes in the kit belongs to the kit's owner
    assert (deployment.kit("server") / "log.txt").stat().st_uid == 1000
    assert "deploy prepare: job model store in local/job_model_store__p_resources.json (server parent only)" in (
        deployment.prepare_output["server"]
    )


def test_pytorch_job_publishes_by_hard_link_and_downloads_outside(deployment, pt_run, tmp_path):
    import torch

    no_host_interpreter(pt_run.folder)
    records = assert_published_by_link(
        deployment, pt_run, {GLOBAL: "FL_global_model.pt", BEST: "best_FL_global_model.pt"}
    )
    assert_job_container(pt_run, PT_IMAGE)
    log = deployment.parent_log()
    assert (
        f"ServerDockerJobLauncher - INFO - launching job {pt_run.job_id} as container server-{pt_run.job_id} "
        f"using image {PT_IMAGE}" in log
    )
    assert (
        f"Added the model publisher to job {pt_run.job_id} (its server process runs from the job's own image "
        "(ServerDockerJobLauncher) and the job's meta.json sets model_publish_job_image_has_fork true)" in log
    )
    files = archive(deployment, pt_run.job_id)
    for component, file_name in ((GLOBAL, "FL_global_model.pt"), (BEST, "best_FL_global_model.pt")):
        path = console_download(deployment, pt_run.job_id, component, tmp_path / component)
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == records[component]["sha256"]
        assert data == member(files, f"app_server/{file_name}")
        model = torch.nn.Linear(4, 2)
        model.load_state_dict(torch.load(path, weights_only=True)["model"])  # as downloaded
        assert model.weight.shape == (2, 4)


def test_tensorflow_job_publishes_by_hard_link_and_keras_loads_it(deployment, tf_run, tmp_path):
    import keras

    no_host_interpreter(tf_run.folder)
    records = assert_published_by_link(deployment, tf_run, {GLOBAL: "tf_model.weights.h5"})
    assert BEST in tf_run.components and records[BEST]["transfer"] == "link"
    assert_job_container(tf_run, TF_IMAGE)
    files = archive(deployment, tf_run.job_id)
    path = console_download(deployment, tf_run.job_id, GLOBAL, tmp_path / "dl")
    assert path.name == "MODEL_global_model.weights.h5"
    assert path.read_bytes() == member(files, "app_server/tf_model.weights.h5")
    model = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Dense(3, name="dense"), keras.layers.Dense(2, name="dense_1")]
    )
    model.load_weights(path)  # as downloaded
    assert [w.shape for w in model.get_weights()] == [(4, 3), (3,), (3, 2), (2,)]
    best = console_download(deployment, tf_run.job_id, BEST, tmp_path / "best")
    model.load_weights(best)


def test_a_job_image_without_the_fork_runs_the_job_as_upstream(deployment, stock_run):
    run = stock_run
    assert run.status == "FINISHED:COMPLETED", deployment.parent_log()[-4000:]
    assert not [c for c in run.components if c.startswith("MODEL_")], run.components
    assert NOT_ADDED.format(job_id=run.job_id) in deployment.parent_log()
    assert_job_container(run, STOCK_PT_IMAGE)
    files = archive(deployment, run.job_id)
    assert member(files, "app_server/FL_global_model.pt"), "the model stays in the workspace"
    assert b"ModelPublisher" not in member(files, "app_server/config/config_fed_server.json")
    assert "component_records" not in job_meta(deployment, run.job_id)


def test_what_a_byoc_job_container_can_read(deployment, pt_run):
    """A BYOC server component lists, from inside its job container, what a forger could use.

    Upstream's layout: the parent's startup/ and local/ are bind-mounted read-only into
    every job container, so the server's TLS key is readable there; no other job's run
    folder, no job store, no Docker socket, and nothing of the parent's ``signing/`` (its
    dedicated model-signing key; what a forger does with the rest: test_security.py).
    """
    import json

    report = json.loads(member(archive(deployment, pt_run.job_id), KEY_FINDER_REPORT))
    assert (report["uid"], report["gid"]) == (1000, 1000)
    assert report["docker_socket"] is False
    assert report["env_with_key_material"] == []
    startup = sorted(f"startup/{p.name}" for p in (deployment.kit("server") / "startup").iterdir())
    visible_startup = sorted(f for f in report["workspace_files"] if f.startswith("startup/"))
    assert visible_startup == startup, "every file of the parent's startup/ (upstream's read-only mount)"
    tops = {f.split("/")[0] for f in report["workspace_files"]}
    assert tops <= {"startup", "local", pt_run.job_id}, tops
    assert report["private_keys"] == [f"{WORKSPACE}/startup/server.key"]
    assert (deployment.kit("server") / "signing" / "model_signing.key").is_file()  # in the parent's kit only
    assert not [f for f in report["workspace_files"] + list(report["pem_files"]) if "signing" in f]
    workspace_mounts = sorted(m for m in report["mounts"] if m.startswith(WORKSPACE))
    assert workspace_mounts == [WORKSPACE] + [f"{WORKSPACE}/{d}" for d in sorted(["local", "startup", pt_run.job_id])]
    print("job container can read:", json.dumps({k: report[k] for k in ("private_keys", "pem_files")}, indent=1))
