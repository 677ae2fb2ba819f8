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
"""Turn model publishing on in a server kit provisioned before the fork, without hand-edited JSON.

A kit's server reads ``local/resources.json`` when it exists and ``resources.json.default``
otherwise; a 2.9.0 kit has only the default. The server needs two things there: the
JobModelStore component (stores each job's models) and, when the file has an explicit
``class_allow_list``, the ModelPublisher class (the store adds it to every job). This
copies the default to ``resources.json`` when there is none, adds exactly those two
entries, and keeps every other key, component and value as they were. Running it again
changes nothing. A file that is not what a FLARE server reads (invalid JSON, components
that are not a list of objects, an allow-list that is not a list, an id taken by another
class) is refused with the reason, and nothing is written.
"""

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import List

STORE_ID = "job_model_store"
STORE_PATH = "nvflare.app_common.widgets.job_model_store.JobModelStore"
PUBLISHER_PATH = "nvflare.app_common.widgets.model_publisher.ModelPublisher"
ALLOW_LIST = "class_allow_list"


class KitRefused(Exception):
    """The kit or its config is not what the tool expects; nothing was changed."""


@dataclass
class EnableResult:
    resources: str
    changes: List[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _kind_of_kit(kit: str) -> str:
    startup = os.path.join(kit, "startup")
    if os.path.isfile(os.path.join(startup, "fed_server.json")):
        return "server"
    if os.path.isfile(os.path.join(startup, "fed_client.json")):
        return "client"
    if os.path.isfile(os.path.join(startup, "fed_admin.json")):
        return "admin"
    return ""


def _load(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise KitRefused(f"cannot read {path}: {e.strerror}") from None
    try:
        config = json.loads(text)
    except ValueError as e:
        raise KitRefused(
            f"{path} is not valid JSON ({e}); fix it (or start again from resources.json.default)"
        ) from None
    if not isinstance(config, dict):
        raise KitRefused(f"{path} is not a JSON object but a {type(config).__name__}: not a FLARE resources file")
    return config


def _plan(config: dict, path: str) -> List[str]:
    """Add the store and the allow-list entry to ``config`` in place; what was added."""
    changes = []
    components = config.get("components")
    if components is None:
        components = config["components"] = []
    if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
        raise KitRefused(f'{path}: "components" is not a list of objects, as a FLARE server expects')
    if not any(c.get("path") == STORE_PATH for c in components):
        taken = [c for c in components if c.get("id") == STORE_ID]
        if taken:
            raise KitRefused(
                f"{path}: component id {STORE_ID!r} is already used by {taken[0].get('path')!r}; "
                f"rename that component, then run this again"
            )
        components.append({"id": STORE_ID, "path": STORE_PATH})
        changes.append(f"added component {STORE_ID} ({STORE_PATH})")
    if ALLOW_LIST in config:
        allow = config[ALLOW_LIST]
        if not isinstance(allow, list) or not all(isinstance(c, str) for c in allow):
            raise KitRefused(f'{path}: "{ALLOW_LIST}" is not a list of class paths')
        if PUBLISHER_PATH not in allow:
            allow.append(PUBLISHER_PATH)
            changes.append(f"added {PUBLISHER_PATH} to {ALLOW_LIST}")
    return changes


def _write_atomically(path: str, config: dict, mode_from: str):
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".resources.", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=4)
            f.write("\n")
        shutil.copymode(mode_from, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def enable_server_kit(kit: str, dry_run: bool = False) -> EnableResult:
    """Enable model publishing in the server kit at ``kit`` (its folder: startup/, local/)."""
    kit = os.path.abspath(kit)
    if not os.path.isdir(kit):
        raise KitRefused(f"{kit} is not a folder")
    kind = _kind_of_kit(kit)
    if kind == "client":
        raise KitRefused(
            f"{kit} is a client kit (startup/fed_client.json): clients need no change for model publishing "
            f"(it runs in the server's job process); give the server's kit"
        )
    if kind == "admin":
        raise KitRefused(f"{kit} is an admin kit (startup/fed_admin.json): give the server's kit")
    if kind != "server":
        raise KitRefused(f"{kit} is not a FLARE server kit: it has no startup/fed_server.json")
    local = os.path.join(kit, "local")
    resources = os.path.join(local, "resources.json")
    default = resources + ".default"
    copy_default = not os.path.exists(resources)
    if copy_default and not os.path.isfile(default):
        raise KitRefused(f"{kit} has neither local/resources.json nor local/resources.json.default")
    source = default if copy_default else resources
    if os.path.islink(source) or not os.path.isfile(source):
        raise KitRefused(f"{source} is not a regular file")
    config = _load(source)
    changes = _plan(config, source)
    result = EnableResult(resources)
    if copy_default:
        result.changes.append("created local/resources.json from local/resources.json.default")
    result.changes.extend(changes)
    if result.changed and not dry_run:
        _write_atomically(resources, config, source)
    return result
