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
"""Add the model publisher to a job's deployed server config, the way upstream's
SiteLogStreamer adds its log streamer: so an unmodified job gets its model published.

Runs in the server parent at BEFORE_JOB_LAUNCH, after the job is deployed to the run
folder and before its process starts. A job that already configures a ModelPublisher
(to tune it or to turn it off) is left as it is. A site whose component allow-list does
not admit the publisher gets no injection, because the job would then fail to build;
the store logs the line the operator has to add instead.

Only where the job's server process can import the publisher: the default process
launcher starts it from this very installation, but the k8s, docker and slurm launchers
start it from the job's own image (the job's launcher_spec, the study's container.image),
which may be stock nvflare; an injected class it cannot import would fail the job. There
the publisher is added only when the operator says the job images have the fork
(server setting model_publish_job_images_have_fork) or the job says so for itself
(``model_publish_job_image_has_fork`` in its meta.json, which wins either way).
"""

import json
import os
from dataclasses import dataclass

PUBLISHER_PATH = "nvflare.app_common.widgets.model_publisher.ModelPublisher"
PUBLISHER_CLASS = PUBLISHER_PATH.rsplit(".", 1)[1]
INJECTED_ID = "auto_model_publisher"


JOB_META_KEY = "model_publish_job_image_has_fork"


@dataclass(frozen=True)
class Placement:
    """Whether the job's server process can import the publisher, and why we think so."""

    has_fork: bool
    reason: str


def job_launchers(fl_ctx) -> list:
    """The launchers that may start this job's server process, seen at BEFORE_JOB_LAUNCH.

    Launchers claim a job in the same event (upstream's add_launcher); those that already
    did are in the context. Handlers run in resources.json order, so when the store comes
    first, every launcher the server parent has is a candidate.
    """
    from nvflare.apis.fl_constant import FLContextKey
    from nvflare.apis.job_launcher_spec import JobLauncherSpec

    claimed = fl_ctx.get_prop(FLContextKey.JOB_LAUNCHER) or []
    if claimed:
        return list(claimed)
    run_manager = getattr(fl_ctx.get_engine(), "run_manager", None)
    candidates = list(getattr(run_manager, "handlers", None) or [])
    candidates += list((getattr(run_manager, "components", None) or {}).values())
    found = []
    for c in candidates:
        if isinstance(c, JobLauncherSpec) and all(c is not f for f in found):
            found.append(c)
    return found


def own_image_launchers(launchers: list) -> list:
    """Names of the launchers that start the job's server process from another image than ours."""
    from nvflare.app_common.job_launcher.process_launcher import ProcessJobLauncher

    return sorted({type(x).__name__ for x in launchers if not isinstance(x, ProcessJobLauncher)})


def store_read_by_job_processes(workspace, store_path: str) -> list:
    """The config files a job's server process reads (upstream's rule) that declare the store.

    The store is built only in the server parent, but a job process from a stock image
    must build every component of these files and cannot import the store.
    """
    found = []
    for path in workspace.get_config_files_for_startup(is_server=True, for_job=True):
        try:
            with open(path) as f:
                components = json.load(f).get("components") or []
        except (OSError, ValueError, AttributeError):
            continue
        if any(isinstance(c, dict) and c.get("path") == store_path for c in components):
            found.append(path)
    return found


def place_publisher(launchers: list, job_meta: dict, job_images_have_fork: bool) -> Placement:
    """Decide whether the job's server process has the fork (so the publisher may be added)."""
    own_images = own_image_launchers(launchers)
    if not own_images:
        return Placement(True, "the job's server process runs from this server's installation")
    where = f"its server process runs from the job's own image ({', '.join(own_images)})"
    declared = (job_meta or {}).get(JOB_META_KEY)
    if isinstance(declared, bool):
        return Placement(declared, f"{where} and the job's meta.json sets {JOB_META_KEY} {str(declared).lower()}")
    if job_images_have_fork:
        return Placement(True, f"{where}; model_publish_job_images_have_fork is true on this server")
    return Placement(
        False,
        f"{where}, which may not contain the nvflare model fork; the job runs as upstream and its models "
        f'stay in its workspace. If the job images contain the fork, set "model_publish_job_images_have_fork": '
        f"true in the server's local/resources.json (or NVFLARE_MODEL_PUBLISH_JOB_IMAGES_HAVE_FORK=true), "
        f'or "{JOB_META_KEY}": true in the job\'s meta.json',
    )


class Outcome:
    INJECTED = "injected"
    CONFIGURED = "configured by the job"
    NO_JSON_CONFIG = "no JSON server config"


def configures_publisher(component: dict) -> bool:
    if not isinstance(component, dict):
        return False
    path = str(component.get("path") or component.get("name") or "")
    return path == PUBLISHER_PATH or path.rsplit(".", 1)[-1] == PUBLISHER_CLASS


def inject_publisher(config_path: str) -> str:
    """Append the publisher to the job's server config unless it has one; the Outcome."""
    if not os.path.isfile(config_path):
        return Outcome.NO_JSON_CONFIG
    with open(config_path) as f:
        config = json.load(f)
    components = config.setdefault("components", [])
    if any(configures_publisher(c) for c in components):
        return Outcome.CONFIGURED
    ids = {c.get("id") for c in components if isinstance(c, dict)}
    comp_id = INJECTED_ID
    while comp_id in ids:
        comp_id += "_"
    components.append({"id": comp_id, "path": PUBLISHER_PATH, "args": {}})
    tmp_path = f"{config_path}.{os.getpid()}.tmp"
    try:
        with open(tmp_path, "w") as f:
            json.dump(config, f, indent=2)
        os.replace(tmp_path, config_path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
    return Outcome.INJECTED
