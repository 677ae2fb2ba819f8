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
"""The job path guard runs in the job container of a kit prepared by `nvflare deploy prepare` (docker).

Such a kit builds the JobModelStore in the server parent only (local/job_model_store__p_
resources.json), so before the guard moved into upstream's component build it did not run
in the job's server process at all. Here the server kit is provisioned by the fork, the
operator's settings are in local/resources.json, and the real `nvflare deploy prepare`
(docker runtime) rewrites local/ as for a real deployment. The server parent then runs
from that kit on this host with upstream's docker job launcher whose daemon is a local
stand-in (tests/support/pod_launchers.py): each job's server process runs, as upstream's
container spec says, from the job's image (here: the fork) in its own mount namespace
with a tmpfs workspace, startup/ and local/ read-only and only its run folder from the
host. (A real container engine is the container tests' business.) The parent's workspace
is the kit folder instead of /var/tmp/nvflare/workspace, so the job store prepare put
under that mount is moved to the kit folder the same way.

Attack (config-only, default allow-list, another org's lead): CrossSiteModelEval +
NPModelLocator aimed at the server's startup/server.key and local/ through the {WORKSPACE}
variable.
"""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from deploy_kits import deploy_prepare
from flare_system import FlareSystem
from job_components import OTHER_ORG_LEAD, add_role_users
from path_guard_jobs import GUARD_RULE as RULE
from path_guard_jobs import cse_locator_job, files_holding

pytestmark = pytest.mark.system

SUPPORT = Path(__file__).resolve().parents[1] / "support"
FORK_IMAGE = "registry.example/nvflare-fork:2.9.0-model.1"
STORE_FILE = "job_model_store__p_resources.json"
STORE = "nvflare.app_common.widgets.job_model_store.JobModelStore"


def fork_image(root: Path) -> Path:
    """A folder standing for the fork's job image: its bin/python is this test venv's (the fork installed),
    with the stand-in launcher importable (the job process builds the site's resources.json components too)."""
    image = root / "fork-image"
    (image / "bin").mkdir(parents=True)
    for exe in ("python", "python3"):
        (image / "bin" / exe).write_text(
            f'#!/bin/sh\nexport PYTHONPATH="{SUPPORT}${{PYTHONPATH:+:$PYTHONPATH}}"\nexec {sys.executable} "$@"\n'
        )
        (image / "bin" / exe).chmod(0o755)
    return image


def prepare_docker_kit(kit: Path, root: Path) -> str:
    """Run the real `nvflare deploy prepare` (docker) on ``kit`` and put its local/ into the kit; the output."""
    out = root / "prepared"
    output = deploy_prepare(
        kit, {"runtime": "docker", "parent": {"docker_image": FORK_IMAGE}}, root / "docker.yaml", out
    )
    shutil.rmtree(kit / "local")
    shutil.copytree(out / "local", kit / "local")  # startup/ keeps the POC start scripts: the parent runs here
    return output


@pytest.fixture(scope="module")
def prepared_system(tmp_path_factory):
    from nvflare.tool.deploy import deploy_common

    root = tmp_path_factory.mktemp("flare_prepared_docker")
    system = FlareSystem(root, n_clients=1, project_edit=add_role_users)
    try:
        system.prepare()
        kit = system.server_dir
        system.prepare_output = prepare_docker_kit(kit, root)
        local = kit / "local"
        # what prepare wrote: the store only where the parent reads it
        assert STORE not in (local / "resources.json.default").read_text()
        assert json.loads((local / STORE_FILE).read_text())["components"][0]["path"] == STORE
        assert not (local / "resources.json").exists()
        # the launcher's daemon is the local stand-in; the workspace mount is the kit folder
        deploy_common._patch_resources(
            kit,
            "docker_launcher",
            "pod_launchers.LocalDockerServerJobLauncher",
            {
                "containers_root": str(root / "containers"),
                "images": {FORK_IMAGE: str(fork_image(root))},
                "hosts": ["server"],
                "workspace_mount": str(kit),
                "workspace": str(kit),
                "network": "nvflare-network",
                "default_python_path": "/usr/local/bin/python",
            },
        )
        deploy_common._relocate_server_storage_to_workspace(kit, str(kit))
        shutil.copyfile(local / "resources.json.default", local / "resources.json")  # FlareSystem reads it
        system.env["PYTHONPATH"] = str(SUPPORT)  # the server parent builds the stand-in launcher
        system.containers = root / "containers"
        system.start()
        yield system
    finally:
        system.stop()


def test_guard_refuses_in_the_job_container_of_a_prepared_kit(prepared_system, tmp_path):
    system = prepared_system
    names = {"server": "{WORKSPACE}/startup/server.key", "site_config": "{WORKSPACE}/local/resources.json.default"}
    job = cse_locator_job(tmp_path, "steal_in_container", model_name=names, n_clients=1, image=FORK_IMAGE)
    job_id, meta = system.submit_and_wait(job, user=OTHER_ORG_LEAD, timeout=180)
    assert meta["status"] == "FINISHED:EXECUTION_EXCEPTION", f"{meta}\n{system.tail_console()}"

    box = system.containers / f"server-{job_id}"
    entry = (box / "entry.sh").read_text()
    assert "exec /usr/local/bin/python -u -m nvflare.private.fed.app.server.runner_process " in entry
    kit = str(system.server_dir)
    real = os.path.realpath(kit)
    run = os.path.join(real, job_id)
    job_log = (box / "container.log").read_text(errors="replace")  # the job process's output
    for key, path in (("server", "startup/server.key"), ("site_config", "local/resources.json.default")):
        assert (
            f"Job {job_id}: refused model locator 'model_locator' (NPModelLocator): model_name.{key} "
            f"'{kit}/{path}' (read) resolves to '{real}/{path}', outside the job's run folder '{run}': {RULE}"
        ) in job_log, job_log[-4000:]
    assert "Loaded server model from" not in job_log
    key = (system.server_dir / "startup" / "server.key").read_bytes()
    assert files_holding(system.server_dir / job_id, key) == []
    assert files_holding(system.prod / "site-1" / job_id, key) == []
