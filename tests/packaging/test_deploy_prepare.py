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
"""`nvflare deploy prepare` keeps the fork's server configuration.

Behaviour test of patches/deploy-prepare-keep-the-fork-s-server-settings-and-store.patch:
the real command, for the k8s and docker runtimes, on a server kit the fork provisioned
(`nvflare poc prepare`), with the operator's settings in local/resources.json as the docs
say. Upstream's prepare deletes that file; the prepared kit must still publish with the
operator's settings, and only the server parent may build the store (a job's server
process reads local/ from the job's own image, which may be stock nvflare).
"""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from deploy_kits import deploy_prepare
from flare_system import FlareSystem

STORE = "nvflare.app_common.widgets.job_model_store.JobModelStore"
PUBLISHER = "nvflare.app_common.widgets.model_publisher.ModelPublisher"
STORE_FILE = "job_model_store__p_resources.json"
OPERATOR_SETTINGS = {
    "model_publish_transfer": "stream",
    "model_publish_global_name": "final_model",
    "model_publish_job_images_have_fork": True,
    "admin_download_timeout": 3600,
    "admin_download_chunk_size": 1048576,
    "job_read_allowed_dirs": ["/srv/flare/evaluation-models"],  # read by every job process (the path guard)
    "model_persistor_allowed_dirs": ["/srv/flare/checkpoints"],
}
RUNTIMES = {
    "k8s": (
        {"runtime": "k8s", "parent": {"docker_image": "registry.example/nvflare-fork:2.9.0-model.1"}},
        "nvflare.app_opt.job_launcher.k8s_launcher.ServerK8sJobLauncher",
    ),
    "docker": (
        {"runtime": "docker", "parent": {"docker_image": "nvflare-fork:2.9.0-model.1"}},
        "nvflare.app_opt.job_launcher.docker_launcher.ServerDockerJobLauncher",
    ),
}


@pytest.fixture(scope="module")
def fork_kit(tmp_path_factory) -> Path:
    """A server kit provisioned by the fork (never started)."""
    system = FlareSystem(tmp_path_factory.mktemp("deploy_kit"), n_clients=1).prepare()
    return system.server_dir


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def prepare(kit: Path, runtime: str, tmp_path: Path) -> tuple:
    out = tmp_path / f"prepared-{runtime}"
    return out, deploy_prepare(kit, RUNTIMES[runtime][0], tmp_path / f"{runtime}.yaml", out)


def operator_kit(fork_kit: Path, tmp_path: Path, older_kit: bool = False) -> Path:
    """The kit as an operator leaves it: settings in local/resources.json (what the server reads)."""
    kit = tmp_path / "server"
    shutil.copytree(fork_kit, kit, ignore=shutil.ignore_patterns("prepared"))
    active = read(kit / "local" / "resources.json")
    active.update(OPERATOR_SETTINGS)
    (kit / "local" / "resources.json").write_text(json.dumps(active, indent=2))
    if older_kit:  # provisioned before the fork: the operator added the store and allow-list entry by hand
        default = read(kit / "local" / "resources.json.default")
        default["components"] = [c for c in default["components"] if c.get("path") != STORE]
        default["class_allow_list"].remove(PUBLISHER)
        (kit / "local" / "resources.json.default").write_text(json.dumps(default, indent=2))
    return kit


def assert_prepared_kit_publishes(out: Path, runtime: str):
    local = out / "local"
    assert not (local / "resources.json").exists(), "upstream's prepare removes the active file"
    resources = read(local / "resources.json.default")
    for key, value in OPERATOR_SETTINGS.items():
        assert resources[key] == value, key
    assert PUBLISHER in resources["class_allow_list"]
    paths = [c.get("path") for c in resources["components"]]
    assert RUNTIMES[runtime][1] in paths
    assert STORE not in paths, "a job process would build the store from resources.json.default"
    assert read(local / STORE_FILE) == {"components": [{"id": "job_model_store", "path": STORE}]}

    # upstream's own rule decides who reads what: the parent reads the store, job processes do not
    from nvflare.apis.workspace import Workspace

    ws = Workspace(root_dir=str(out), site_name="server")
    parent_files = [Path(f).name for f in ws.get_config_files_for_startup(is_server=True, for_job=False)]
    job_files = [Path(f).name for f in ws.get_config_files_for_startup(is_server=True, for_job=True)]
    assert parent_files == ["fed_server.json", "resources.json.default", STORE_FILE]
    assert job_files == ["fed_server.json", "resources.json.default"]


@pytest.mark.parametrize("runtime", ["k8s", "docker"])
def test_prepare_keeps_settings_store_and_allow_list(fork_kit, runtime, tmp_path):
    out, output = prepare(operator_kit(fork_kit, tmp_path), runtime, tmp_path)
    assert_prepared_kit_publishes(out, runtime)
    assert f"deploy prepare: job model store in local/{STORE_FILE} (server parent only)" in output
    for key in OPERATOR_SETTINGS:
        assert f"deploy prepare: kept {key} from resources.json" in output


@pytest.mark.parametrize("runtime", ["k8s", "docker"])
def test_prepare_keeps_what_an_operator_added_to_an_older_kit(fork_kit, runtime, tmp_path):
    out, output = prepare(operator_kit(fork_kit, tmp_path, older_kit=True), runtime, tmp_path)
    assert_prepared_kit_publishes(out, runtime)
    assert f"deploy prepare: kept {PUBLISHER} in class_allow_list" in output


def test_prepare_respects_a_store_the_operator_removed(fork_kit, tmp_path):
    kit = operator_kit(fork_kit, tmp_path)
    active = read(kit / "local" / "resources.json")
    active["components"] = [c for c in active["components"] if c.get("path") != STORE]
    (kit / "local" / "resources.json").write_text(json.dumps(active))
    out, output = prepare(kit, "k8s", tmp_path)
    paths = [c.get("path") for c in read(out / "local" / "resources.json.default")["components"]]
    assert STORE not in paths and not (out / "local" / STORE_FILE).exists()
    assert "deploy prepare: left out the job model store: local/resources.json does not declare it" in output


def test_prepared_helm_chart_and_docker_script_are_upstreams(fork_kit, tmp_path):
    """The hook changes local/ only: chart and start script stay upstream's."""
    out, _ = prepare(operator_kit(fork_kit, tmp_path), "k8s", tmp_path)
    values = yaml.safe_load((out / "helm_chart" / "values.yaml").read_text())
    assert values["image"] == {
        "repository": "registry.example/nvflare-fork",
        "tag": "2.9.0-model.1",
        "pullPolicy": "IfNotPresent",
    }
    out, _ = prepare(operator_kit(fork_kit, tmp_path / "d"), "docker", tmp_path / "d")
    assert (out / "startup" / "start_docker.sh").is_file()
