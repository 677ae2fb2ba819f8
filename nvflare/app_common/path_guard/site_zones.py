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
"""The folders of a site that no job's configuration may make a component open, whatever else is allowed.

Why: the operator's allowed read directories may be broad (``/srv/flare``), and a
client's components may read data anywhere: neither may reach the site's startup kit
(keys), its local/ config, another job's run folder or the server's job store (every
stored model is a plain file at ``<job store>/<job id>/MODEL_global_model``).

What: the site's workspace root, except the job's own run folder: every entry there that
exists when the job is built (``startup/``, ``local/``, other jobs' folders, the site's
logs and audit file) - a name that does not exist yet holds nothing to read; the
server's job store and snapshot store (from the server's ``local/resources.json``, as the
job process reads it); and the result, log and audit roots an operator moved out of the
workspace (``NVFLARE_RESULT_ROOT`` & co.), except the job's own folder there.
"""

import os
from dataclasses import dataclass
from typing import List, Optional

from nvflare.app_common.model_publishing.run_folder_files import is_inside

WORKSPACE = "the site's workspace"
JOB_STORE = "the server's job store"
SNAPSHOT_STORE = "the server's snapshot store"


@dataclass(frozen=True)
class Zone:
    what: str
    root: str  # real path
    own: str = ""  # the job's own folder inside it (real path), exempt
    existing_only: bool = False  # only entries that exist directly under root are protected (the workspace)

    def holds(self, real: str) -> bool:
        if self.own and (real == self.own or is_inside(real, self.own)):
            return False
        if real == self.root:
            return True
        if not is_inside(real, self.root):
            return False
        if not self.existing_only:
            return True
        first = os.path.relpath(real, self.root).split(os.sep)[0]
        return os.path.lexists(os.path.join(self.root, first))


def _storage_roots(resources: dict) -> List[Zone]:
    """The job store (job_manager's uri_root) and snapshot store (root_dir) the server's resources.json declares."""
    zones = []
    for comp in resources.get("components") or []:
        if isinstance(comp, dict) and comp.get("id") == "job_manager":
            root = (comp.get("args") or {}).get("uri_root")
            if isinstance(root, str) and os.path.isabs(root):
                zones.append(Zone(JOB_STORE, os.path.realpath(root)))
    try:
        root = resources["snapshot_persistor"]["args"]["storage"]["args"]["root_dir"]
    except (KeyError, TypeError):
        root = None
    if isinstance(root, str) and os.path.isabs(root):
        zones.append(Zone(SNAPSHOT_STORE, os.path.realpath(root)))
    return zones


def site_zones(workspace, job_id: str, run_dir: str, resources: Optional[dict]) -> List[Zone]:
    """The protected folders of the site whose ``workspace`` (upstream Workspace) runs job ``job_id``."""
    own_run = os.path.realpath(run_dir)
    zones = [Zone(WORKSPACE, os.path.realpath(workspace.get_root_dir()), own_run, existing_only=True)]
    for attr, what in (("result_root", "result"), ("log_root", "log"), ("audit_root", "audit")):
        root = getattr(workspace, attr, None)
        if isinstance(root, str) and root:
            site_root = os.path.realpath(os.path.join(root, workspace.site_name))
            zones.append(Zone(f"the site's {what} root", site_root, os.path.join(site_root, job_id)))
    if isinstance(resources, dict):
        zones += _storage_roots(resources)
    return zones


def zone_of(real: str, zones: List[Zone]) -> Optional[Zone]:
    return next((z for z in zones if z.holds(real)), None)
