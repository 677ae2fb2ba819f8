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
"""

import json
import os

PUBLISHER_PATH = "nvflare.app_common.widgets.model_publisher.ModelPublisher"
PUBLISHER_CLASS = PUBLISHER_PATH.rsplit(".", 1)[1]
INJECTED_ID = "auto_model_publisher"


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
