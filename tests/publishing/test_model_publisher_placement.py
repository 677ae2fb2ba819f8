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
"""Where the store may add the publisher: only where the job's server process has the fork.

Upstream's own launcher classes (process, k8s, docker, slurm), built as a server builds
them from resources.json; the decision and the exact reason the operator reads in the log.
The real launch through a launcher whose job process lacks the fork is in
test_container_pod_path.py.
"""

import json

import pytest

from nvflare.apis.fl_constant import FLContextKey
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.job_launcher.server_process_launcher import ServerProcessJobLauncher
from nvflare.app_common.model_publishing.model_publisher_injection import (
    JOB_META_KEY,
    job_launchers,
    own_image_launchers,
    place_publisher,
    store_read_by_job_processes,
)
from nvflare.app_opt.job_launcher.docker_launcher import ServerDockerJobLauncher
from nvflare.app_opt.job_launcher.k8s_launcher import ServerK8sJobLauncher

HOW_TO_ENABLE = (
    "which may not contain the nvflare model fork; the job runs as upstream and its models stay in its "
    'workspace. If the job images contain the fork, set "model_publish_job_images_have_fork": true in the '
    "server's local/resources.json (or NVFLARE_MODEL_PUBLISH_JOB_IMAGES_HAVE_FORK=true), or "
    '"model_publish_job_image_has_fork": true in the job\'s meta.json'
)


def k8s():
    return ServerK8sJobLauncher(config_file_path=None)


def docker():
    return ServerDockerJobLauncher(workspace="/var/tmp/host-workspace")


def test_process_launcher_runs_the_job_from_this_installation():
    placement = place_publisher([ServerProcessJobLauncher()], {}, job_images_have_fork=False)
    assert placement.has_fork
    assert placement.reason == "the job's server process runs from this server's installation"


@pytest.mark.parametrize("launcher, name", [(k8s, "ServerK8sJobLauncher"), (docker, "ServerDockerJobLauncher")])
def test_own_image_launchers_skip_and_say_how_to_enable(launcher, name):
    placement = place_publisher([launcher()], {"job_id": "j1"}, job_images_have_fork=False)
    assert not placement.has_fork
    assert placement.reason == f"its server process runs from the job's own image ({name}), {HOW_TO_ENABLE}"


def test_server_setting_says_the_job_images_have_the_fork():
    placement = place_publisher([k8s()], {}, job_images_have_fork=True)
    assert placement.has_fork
    assert placement.reason == (
        "its server process runs from the job's own image (ServerK8sJobLauncher); "
        "model_publish_job_images_have_fork is true on this server"
    )


@pytest.mark.parametrize("server_setting", [True, False])
@pytest.mark.parametrize("declared", [True, False])
def test_the_jobs_own_declaration_wins(server_setting, declared):
    placement = place_publisher([docker()], {JOB_META_KEY: declared}, job_images_have_fork=server_setting)
    assert placement.has_fork is declared
    assert placement.reason == (
        "its server process runs from the job's own image (ServerDockerJobLauncher) and the job's meta.json "
        f"sets model_publish_job_image_has_fork {str(declared).lower()}"
    )


@pytest.mark.parametrize("declared", ["true", 1, None, {"x": 1}])
def test_only_a_json_boolean_is_a_declaration(declared):
    assert not place_publisher([k8s()], {JOB_META_KEY: declared}, job_images_have_fork=False).has_fork
    assert place_publisher([k8s()], {JOB_META_KEY: declared}, job_images_have_fork=True).has_fork


def test_a_declaration_does_not_matter_for_the_process_launcher():
    placement = place_publisher([ServerProcessJobLauncher()], {JOB_META_KEY: False}, job_images_have_fork=False)
    assert placement.has_fork


def test_launchers_that_claimed_the_job_are_the_ones_considered():
    ctx = FLContext()
    claimed = k8s()
    ctx.set_prop(FLContextKey.JOB_LAUNCHER, [claimed], private=True, sticky=False)
    assert job_launchers(ctx) == [claimed]


STORE = "nvflare.app_common.widgets.job_model_store.JobModelStore"


def kit_with(tmp_path, **local_files):
    (tmp_path / "startup").mkdir()
    (tmp_path / "startup" / "fed_server.json").write_text('{"servers": []}')
    (tmp_path / "local").mkdir()
    for name, components in local_files.items():
        (tmp_path / "local" / name.replace("__dot__", ".")).write_text(json.dumps({"components": components}))
    from nvflare.apis.workspace import Workspace

    return Workspace(root_dir=str(tmp_path), site_name="server")


def test_store_in_resources_json_is_read_by_job_processes(tmp_path):
    ws = kit_with(tmp_path, resources__dot__json=[{"id": "job_model_store", "path": STORE}])
    assert store_read_by_job_processes(ws, STORE) == [str(tmp_path / "local" / "resources.json")]


def test_store_in_a_parent_only_file_is_not(tmp_path):
    ws = kit_with(
        tmp_path,
        resources__dot__json__dot__default=[{"id": "x", "path": "a.B"}],
        job_model_store__p_resources__dot__json=[{"id": "job_model_store", "path": STORE}],
    )
    assert store_read_by_job_processes(ws, STORE) == []


def test_own_image_launchers_are_named():
    assert own_image_launchers([ServerProcessJobLauncher(), k8s()]) == ["ServerK8sJobLauncher"]
    assert own_image_launchers([ServerProcessJobLauncher()]) == []
