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
"""What ``nvflare deploy prepare`` must keep of the fork's server configuration.

Upstream's prepare rewrites ``local/resources.json.default`` and deletes the active
``local/resources.json``, where operators put the fork's settings (``model_publish_*``,
``admin_download_*``, the allowed read directories ``job_read_allowed_dirs``) and, on
kits from before the fork, the store component and the publisher's allow-list entry.
Without this the prepared server would quietly run with defaults (or without publishing
at all).

The store moves into ``local/job_model_store__p_resources.json``: upstream reads
``*__p_resources.json`` in the server parent only. On the container runtimes each job's
server process reads the site's ``local/`` too, from the job's own image; a stock
nvflare there cannot import the store and the job would fail to configure. The store
lives only in the parent anyway (it ignores job processes).
"""

import json
from pathlib import Path

STORE_PATH = "nvflare.app_common.widgets.job_model_store.JobModelStore"
PUBLISHER_PATH = "nvflare.app_common.widgets.model_publisher.ModelPublisher"
STORE_FILE = "job_model_store__p_resources.json"
SETTING_PREFIXES = ("model_publish_", "admin_download_")
# the guard's allowed read directories, read by each job process from the site's local/ (server and clients)
SETTING_KEYS = ("job_read_allowed_dirs", "model_persistor_allowed_dirs")
ACTIVE_RESOURCES = "resources.json"


def _is_store(component) -> bool:
    return isinstance(component, dict) and component.get("path") == STORE_PATH


def _read_active(local_dir: Path) -> dict:
    path = local_dir / ACTIVE_RESOURCES
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}  # upstream discards it unread as well
    return data if isinstance(data, dict) else {}


def carry_fork_settings(local_dir, resources: dict) -> list:
    """Before upstream writes ``resources`` (the new resources.json.default) and deletes
    resources.json: keep the fork's settings, store and allow-list entry; the list of what
    was carried or moved, for the prepare output."""
    local_dir = Path(local_dir)
    active = _read_active(local_dir)
    notes = []

    for key, value in active.items():
        if (key.startswith(SETTING_PREFIXES) or key in SETTING_KEYS) and resources.get(key) != value:
            resources[key] = value
            notes.append(f"kept {key} from {ACTIVE_RESOURCES}")

    allow = resources.get("class_allow_list")
    if (
        isinstance(allow, list)
        and PUBLISHER_PATH not in allow
        and PUBLISHER_PATH in (active.get("class_allow_list") or [])
    ):
        allow.append(PUBLISHER_PATH)
        notes.append(f"kept {PUBLISHER_PATH} in class_allow_list")

    components = resources.get("components")
    if not isinstance(components, list):
        return notes
    # The active file is what the server ran with: it decides whether there is a store.
    declared = active.get("components") if isinstance(active.get("components"), list) else components
    store = next((c for c in declared if _is_store(c)), None)
    if any(_is_store(c) for c in components):
        components[:] = [c for c in components if not _is_store(c)]
        if store is None:
            notes.append(f"left out the job model store: local/{ACTIVE_RESOURCES} does not declare it")
    if store is not None:
        parent_only = {"components": [store]}
        (local_dir / STORE_FILE).write_text(json.dumps(parent_only, indent=4) + "\n", encoding="utf-8")
        notes.append(f"job model store in local/{STORE_FILE} (server parent only)")
    return notes
