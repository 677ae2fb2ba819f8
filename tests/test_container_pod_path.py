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
"""Jobs whose server process runs as a Kubernetes pod or a Docker container, end to end.

No cluster or Docker daemon runs here. The server runs upstream's k8s / docker job
launcher with a local stand-in for the cluster (tests/support/pod_launchers.py): the pod
manifest and container spec are upstream's, and each runs as a process in its own mount
namespace that sees what the manifest describes (k8s: an emptyDir over the workspace, the
workspace fetched from the parent and the results sent back after END_RUN by upstream's
own code; docker: the job's run folder bind-mounted from the host). The server kit is set
up with upstream's deploy-prepare functions (launcher, comm config: the job process
reaches the parent over stcp) and the fork's hook (the store in a parent-only file).

Two "images": the fork, and stock nvflare 2.9.0 (the upstream wheel, no overlay modules).
"""

import hashlib
import json
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from flare_system import FlareSystem, free_port
from model_jobs import BEST, GLOBAL, pt_fedavg_job, run_and_catch_finish

pytestmark = [pytest.mark.system, pytest.mark.slow]

SUPPORT = Path(__file__).resolve().parent / "support"
FORK_IMAGE = "registry.example/nvflare-fork:2.9.0-model.1"
STOCK_IMAGE = "nvcr.io/nvidia/nvflare:2.9.0"
SKIPPED = (
    "model publisher not added: its server process runs from the job's own image ({launcher}), which may "
    "not contain the nvflare model fork; the job runs as upstream and its models stay in its workspace."
)


def make_image(root: Path, name: str, upstream_wheel: Path = None) -> Path:
    """A folder standing for an image: bin/python starts a venv with the fork, or with stock nvflare."""
    image = root / name
    env_dir = image / "venv"
    venv.create(env_dir, with_pip=False)
    site = next(env_dir.glob("lib/python*/site-packages"))
    if upstream_wheel:
        with zipfile.ZipFile(upstream_wheel) as z:
            z.extractall(site)  # stock nvflare first on sys.path, ahead of the fork below
    import site as site_mod

    # the test venv's packages (torch, ...) and the simulated launchers, as installed in an image
    (site / "image.pth").write_text(f"{SUPPORT}\n{site_mod.getsitepackages()[0]}\n")
    (image / "bin").mkdir()
    for exe in ("python", "python3"):
        (image / "bin" / exe).write_text(f'#!/bin/sh\nexec {env_dir}/bin/python "$@"\n')
        (image / "bin" / exe).chmod(0o755)
    return image


def image_python(image: Path) -> str:
    return str(image / "venv" / "bin" / "python")


@pytest.fixture(scope="module")
def images(tmp_path_factory, upstream_wheel):
    root = tmp_path_factory.mktemp("images")
    return {FORK_IMAGE: str(make_image(root, "fork")), STOCK_IMAGE: str(make_image(root, "stock", upstream_wheel))}


def test_the_stock_image_lacks_the_forks_modules(images):
    probe = "import nvflare; print(nvflare.__version__); import nvflare.app_common.widgets.model_publisher"
    stock = subprocess.run([image_python(Path(images[STOCK_IMAGE])), "-c", probe], capture_output=True, text=True)
    assert stock.stdout.strip() == "2.9.0"
    assert "ModuleNotFoundError: No module named 'nvflare.app_common.widgets.model_publisher'" in stock.stderr
    fork = subprocess.run([image_python(Path(images[FORK_IMAGE])), "-c", probe], capture_output=True, text=True)
    assert fork.returncode == 0 and fork.stdout.strip() == "2.9.0+model.1", fork.stderr


def start_system(root: Path, configure_kit, keep_store_in_resources: bool = False) -> FlareSystem:
    system = FlareSystem(root)
    system.prepare()
    store_kept = (system.server_dir / "local" / "resources.json").read_text() if keep_store_in_resources else None
    configure_kit(system.server_dir)
    # as deploy prepare does: the job store in the workspace (POC's /tmp/nvflare/jobs-storage
    # is shared by every POC system on the host, and another server would take our jobs)
    from nvflare.tool.deploy import deploy_common

    deploy_common._relocate_server_storage_to_workspace(system.server_dir, str(system.server_dir))
    if store_kept:  # configured by hand: the store left where every process reads it
        resources = json.loads((system.server_dir / "local" / "resources.json.default").read_text())
        resources["components"] += [c for c in json.loads(store_kept)["components"] if c["id"] == "job_model_store"]
        (system.server_dir / "local" / "resources.json.default").write_text(json.dumps(resources, indent=2))
        (system.server_dir / "local" / "job_model_store__p_resources.json").unlink()
    # upstream's prepare leaves only resources.json.default; the tests read resources.json
    local = system.server_dir / "local"
    shutil.copyfile(local / "resources.json.default", local / "resources.json")
    system.env["PYTHONPATH"] = str(SUPPORT)  # the server parent builds the simulated launcher
    system.start()
    return system


@pytest.fixture(scope="module")
def k8s_system(tmp_path_factory, images):
    root = tmp_path_factory.mktemp("flare_k8s")
    system = None
    try:
        system = start_system(root, k8s_kit_configurer(root, images))
        system.pods = root / "pods"
        yield system
    finally:
        if system:
            system.stop()


def k8s_kit_configurer(root: Path, images: dict):
    from nvflare.tool.deploy import deploy_common, k8s_deploy

    def configure(kit: Path):
        deploy_common._patch_resources(
            kit,
            "k8s_launcher",
            "pod_launchers.LocalK8sServerJobLauncher",
            {
                "pods_root": str(root / "pods"),
                "images": images,
                "hosts": ["server"],
                "namespace": "default",
                "default_python_path": k8s_deploy.K8S_PARENT_PYTHON_PATH,
                "workspace_mount_path": str(kit),
            },
        )
        k8s_deploy._patch_comm_config_for_k8s(kit, "server", "server", free_port(), server_service_name="localhost")

    return configure


@pytest.fixture(scope="module")
def docker_system(tmp_path_factory, images):
    from nvflare.tool.deploy import deploy_common, docker_deploy

    root = tmp_path_factory.mktemp("flare_docker")

    def configure(kit: Path):
        deploy_common._patch_resources(
            kit,
            "docker_launcher",
            "pod_launchers.LocalDockerServerJobLauncher",
            {
                "containers_root": str(root / "containers"),
                "images": images,
                "hosts": ["server"],
                "workspace_mount": str(kit),
                "workspace": str(kit),
                "network": "nvflare-network",
                "default_python_path": "/usr/local/bin/python",
            },
        )
        docker_deploy._patch_comm_config_for_docker(kit)
        resources = json.loads((kit / "local" / "resources.json.default").read_text())
        resources["model_publish_job_images_have_fork"] = True  # this site's job images have the fork
        (kit / "local" / "resources.json.default").write_text(json.dumps(resources, indent=2))

    system = None
    try:
        system = start_system(root, configure)
        system.containers = root / "containers"
        yield system
    finally:
        if system:
            system.stop()


def job_in_image(tmp_path: Path, mode: str, image: str, **meta) -> Path:
    job = pt_fedavg_job(tmp_path)
    meta_file = job / "meta.json"
    data = json.loads(meta_file.read_text())
    data["launcher_spec"] = {"server": {mode: {"image": image}}}
    data.update(meta)
    meta_file.write_text(json.dumps(data, indent=2))
    return job


def workspace_archive(system, job_id) -> dict:
    with zipfile.ZipFile(system.job_store_dir(job_id) / "workspace") as z:
        return {n: z.read(n) for n in z.namelist() if not n.endswith("/")}


def model_in_archive(files: dict, name: str) -> bytes:
    (found,) = [data for n, data in files.items() if n.endswith("/" + name) or n == name]
    return found


def assert_published_and_downloads(system, job_id, components, transfer, tmp_path):
    assert GLOBAL in components and BEST in components, components
    records = json.loads((system.job_store_dir(job_id) / "meta").read_text())["component_records"]
    archive = workspace_archive(system, job_id)
    for component, file_name in ((GLOBAL, "FL_global_model.pt"), (BEST, "best_FL_global_model.pt")):
        assert records[component]["transfer"] == transfer
        with system.session() as sess:
            path = Path(sess.download_job_component(job_id, component, str(tmp_path / "dl")))
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == records[component]["sha256"]
        # the same bytes the job wrote, as the results it sent back hold them
        assert data == model_in_archive(archive, file_name)


def pod_of(system, job_id) -> Path:
    (pod,) = [p for p in system.pods.iterdir() if job_id[:8] in p.name]
    return pod


def test_k8s_pod_from_a_stock_image_runs_as_upstream(k8s_system, images, tmp_path):
    job_id, status, components = run_and_catch_finish(k8s_system, job_in_image(tmp_path, "k8s", STOCK_IMAGE))
    assert status == "FINISHED:COMPLETED", k8s_system.tail_console()
    assert not [c for c in components if c.startswith("MODEL_")], components
    log = k8s_system.console_log.read_text(errors="replace")
    assert f"Job {job_id}: {SKIPPED.format(launcher='LocalK8sServerJobLauncher')}" in log
    # the job ran in its pod, from the stock image, and sent its results back to the parent
    pod = pod_of(k8s_system, job_id)
    entry = (pod / "entry.sh").read_text()
    assert "exec /usr/local/bin/python3 -u -m nvflare.private.fed.app.server.runner_process " in entry
    assert f" -n {job_id} " in entry
    assert f"mount --bind {images[STOCK_IMAGE]}/bin /usr/local/bin" in entry
    assert "created backbone internal connector to stcp://localhost:" in (pod / "container.log").read_text()
    assert (pod / "volume-workspace-job").is_dir()
    archive = workspace_archive(k8s_system, job_id)
    assert model_in_archive(archive, "FL_global_model.pt"), "results not copied back after END_RUN"
    server_config = json.loads(model_in_archive(archive, "config_fed_server.json"))
    assert "ModelPublisher" not in json.dumps(server_config)


def test_k8s_pod_with_the_fork_streams_its_models_before_finished(k8s_system, tmp_path):
    job = job_in_image(tmp_path, "k8s", FORK_IMAGE, model_publish_job_image_has_fork=True)
    job_id, status, components = run_and_catch_finish(k8s_system, job)
    assert status == "FINISHED:COMPLETED", k8s_system.tail_console()
    # the emptyDir is not the parent's disk: "not visible", so the job process streams
    assert_published_and_downloads(k8s_system, job_id, components, "stream", tmp_path)
    log = k8s_system.console_log.read_text(errors="replace")
    assert (
        f"Added the model publisher to job {job_id} (its server process runs from the job's own image "
        "(LocalK8sServerJobLauncher) and the job's meta.json sets model_publish_job_image_has_fork true)"
    ) in log
    model_file = next((pod_of(k8s_system, job_id) / "volume-workspace-job").rglob("FL_global_model.pt"))
    assert model_file.is_file(), "the model was written in the pod's own emptyDir"


def test_docker_container_with_the_fork_links_from_the_bind_mounted_run_folder(docker_system, tmp_path):
    job_id, status, components = run_and_catch_finish(docker_system, job_in_image(tmp_path, "docker", FORK_IMAGE))
    assert status == "FINISHED:COMPLETED", docker_system.tail_console()
    # the run folder is the host's (bind mount): the store hard-links the job's file
    assert_published_and_downloads(docker_system, job_id, components, "link", tmp_path)
    # the container saw upstream's layout: a tmpfs workspace, the run folder bound from the host,
    # the parent reached by its container name over stcp
    entry = (docker_system.containers / f"server-{job_id}" / "entry.sh").read_text()
    kit = docker_system.server_dir
    assert f"mount -t tmpfs -o mode=1777 tmpfs {kit}\n" in entry
    assert f"mount --bind {docker_system.containers}/server-{job_id}/stage" in entry and f" {kit}/{job_id}\n" in entry
    assert "exec /usr/local/bin/python -u -m nvflare.private.fed.app.server.runner_process " in entry
    assert " -p stcp://server:" in entry
    log = docker_system.console_log.read_text(errors="replace")
    assert (
        f"Added the model publisher to job {job_id} (its server process runs from the job's own image "
        "(LocalDockerServerJobLauncher); model_publish_job_images_have_fork is true on this server)" in log
    )


def test_docker_container_from_a_stock_image_declared_by_the_job_runs_as_upstream(docker_system, tmp_path):
    job = job_in_image(tmp_path, "docker", STOCK_IMAGE, model_publish_job_image_has_fork=False)
    job_id, status, components = run_and_catch_finish(docker_system, job)
    assert status == "FINISHED:COMPLETED", docker_system.tail_console()
    assert not [c for c in components if c.startswith("MODEL_")], components
    log = docker_system.console_log.read_text(errors="replace")
    assert (
        f"Job {job_id}: model publisher not added: its server process runs from the job's own image "
        "(LocalDockerServerJobLauncher) and the job's meta.json sets model_publish_job_image_has_fork false"
    ) in log


def test_store_left_where_job_processes_read_it_is_reported_and_fails_stock_jobs(tmp_path_factory, images, tmp_path):
    """Why deploy prepare moves the store: configured by hand, a stock job image cannot build it."""
    root = tmp_path_factory.mktemp("flare_k8s_by_hand")
    system = None
    try:
        system = start_system(root, k8s_kit_configurer(root, images), keep_store_in_resources=True)
        system.pods = root / "pods"
        log = system.console_log.read_text(errors="replace")
        assert re.search(r"The job model store is declared in \S+/local/resources\.json, which", log), log[-3000:]
        assert (
            "/local/resources.json, which each job's server "
            "process reads too; with LocalK8sServerJobLauncher that process runs from the job's own image, and an "
            "image without the nvflare model fork cannot build it (the job fails). Move the job_model_store "
            "component to local/job_model_store__p_resources.json (read by the server parent only), as "
            "`nvflare deploy prepare` does"
        ) in log
        job_id, status, components = run_and_catch_finish(system, job_in_image(tmp_path, "k8s", STOCK_IMAGE))
        assert status != "FINISHED:COMPLETED" and not [c for c in components if c.startswith("MODEL_")]
        pod_log = (pod_of(system, job_id) / "container.log").read_text(errors="replace")
        assert "nvflare.app_common.widgets.job_model_store" in pod_log, pod_log[-3000:]
    finally:
        if system:
            system.stop()
