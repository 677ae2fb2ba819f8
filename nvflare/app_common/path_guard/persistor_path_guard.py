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
"""Refuse to build any component a job configures to open files outside the job.

Why: a job's config is user input. A lead without custom-code rights could otherwise make
a job process read another org's stored model (``NPModelLocator`` with an absolute
``model_name``, used by ``CrossSiteModelEval``: both on upstream's default allow-list),
its site's keys, or overwrite files (persistors' absolute or ``..`` file names).

Where: upstream's ``authorize_build_component`` (fed_utils), which both the server's and
every client's job process run for every component of the job's config - after the
config's ``{var}`` references are resolved and the class allow-list has passed it, before
anything is constructed - calls ``refuse_outside_paths`` (patch
job-processes-refuse-components-configured-to-open-files-outside-the-job.patch). So the
check runs wherever the job runs and has the fork (POC, provisioned, upgraded kits,
``nvflare deploy prepare`` job images), needs no component in resources.json, and a
refusal fails the job the way upstream fails a component that is not allowed.

The rule (RULE): every file a component will open - component_paths says which, with how
far it must stay - must resolve, symlinks resolved and ``..`` collapsed, inside the job's
run folder; a file it only reads may also lie in a directory the operator lists in
``job_read_allowed_dirs`` (old name: ``model_persistor_allowed_dirs``; both are read).
Nothing may resolve into the site's protected folders (site_zones: ``startup/``,
``local/``, other jobs' folders, the job store), allowed directories or not. A client's
components other than persistors and model locators are held only to that last part
(SITE_RULE): their data lives outside the job by design.
"""

import json
import logging
import os
from typing import List, Optional, Tuple

from nvflare.apis.fl_constant import FLContextKey, SiteType, SystemConfigs
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.model_publishing.run_folder_files import is_inside
from nvflare.app_common.path_guard.component_paths import COMPONENT, configured_paths, kind_of
from nvflare.app_common.path_guard.persistor_paths import READ, SITE, JobFolders, PersistorPath
from nvflare.app_common.path_guard.site_zones import WORKSPACE, Zone, site_zones, zone_of
from nvflare.fuel.utils.config_service import ENV_VAR_PREFIX, ConfigService

READ_ALLOWED_DIRS = "job_read_allowed_dirs"
ALLOWED_DIRS = "model_persistor_allowed_dirs"  # the setting's first name, still read
AUDIT_ACTION = "component_authorization.path_refused"

RULE = (
    "a job's components may write files only inside the job's own run folder, and read them only there or in a "
    f"directory of the site setting {READ_ALLOWED_DIRS} ({ALLOWED_DIRS}), never in the site's startup/, local/, "
    "other jobs' folders or the job store"
)
SITE_RULE = (
    "no component a job configures may open files in the site's startup/, local/, other jobs' folders or the job "
    "store (a client's components other than persistors and model locators may open files outside its workspace)"
)

_logger = logging.getLogger("JobPathGuard")


def env_var_name(name: str) -> str:
    return (ENV_VAR_PREFIX + name).upper()


def _load_dirs(key: str) -> Optional[list]:
    """The directories one key names (None: not set); ValueError naming the key if invalid."""
    where = f"{key} (site local/resources.json or env {env_var_name(key)})"
    value = os.environ.get(env_var_name(key))
    if value is not None:
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError as e:
                raise ValueError(f"invalid {where}: {value!r} is not a JSON list: {e}") from None
        else:
            value = [d for d in text.split(os.pathsep) if d]
    else:
        section = ConfigService.get_section(SystemConfigs.RESOURCES_CONF) or {}
        value = section.get(key) if isinstance(section, dict) else None
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(f"invalid {where}: {value!r} must be a list of absolute directories")
    dirs = []
    for d in value:
        if not isinstance(d, str) or not os.path.isabs(d):
            raise ValueError(f"invalid {where}: {d!r} is not an absolute directory")
        if os.path.realpath(d) == os.sep:
            raise ValueError(f"invalid {where}: {d!r} would allow every file of the site")
        dirs.append(os.path.normpath(d))
    return dirs


def load_allowed_dirs() -> Tuple[str, ...]:
    """The site's allowed read directories: job_read_allowed_dirs and model_persistor_allowed_dirs together.

    Each from ``NVFLARE_<KEY>`` (a JSON list, or directories separated by ``os.pathsep``)
    if set, else the top-level key of the site's local/resources.json (a JSON list).
    Default: none. ValueError naming the key if one is invalid.
    """
    dirs = []
    for key in (READ_ALLOWED_DIRS, ALLOWED_DIRS):
        for d in _load_dirs(key) or []:
            if d not in dirs:
                dirs.append(d)
    return tuple(dirs)


def problem(p: PersistorPath, run_dir: str, allowed_dirs, zones: List[Zone] = ()) -> Optional[str]:
    """Why the rule refuses ``p``, or None when it may be used."""
    run = os.path.realpath(run_dir)
    root, folder = run, "run folder"
    if p.root and os.path.realpath(p.root) != run:
        root, folder = os.path.realpath(p.root), "result folder"
    real = os.path.realpath(p.path)
    if real == root or is_inside(real, root):
        return None
    zone = zone_of(real, zones)
    opened = f"{p.setting} {p.value!r} ({p.access}) resolves to {real!r}"
    if p.scope == SITE:
        if zone is None:
            return None
        outside = f", outside the job's run folder {run!r}" if zone.what == WORKSPACE else ""
        return f"{opened}, inside {zone.what} {zone.root!r}{outside}"
    if p.access == READ and any(real == a or is_inside(real, a) for a in map(os.path.realpath, allowed_dirs)):
        if zone is None:
            return None
        return f"{opened}, inside {zone.what} {zone.root!r}, which no allowed directory opens"
    return f"{opened}, outside the job's {folder} {root!r}"


def refused(paths: List[PersistorPath], run_dir: str, allowed_dirs, zones: List[Zone] = ()) -> List[Tuple[str, str]]:
    """(why, scope) for each configured value the rule refuses, in order: the first reason for each setting,
    value and access (a relative value is tried from several folders; one reason is enough)."""
    found, seen = [], set()
    for p in paths:
        key = (p.setting, repr(p.value), p.access)
        if key in seen:
            continue
        why = problem(p, run_dir, allowed_dirs, zones)
        if why:
            seen.add(key)
            found.append((why, p.scope))
    return found


def refusals(paths: List[PersistorPath], run_dir: str, allowed_dirs, zones: List[Zone] = ()) -> List[str]:
    return [why for why, _ in refused(paths, run_dir, allowed_dirs, zones)]


def job_folders(fl_ctx: FLContext) -> Optional[JobFolders]:
    """The job's folders, as its job process sees them while its config is being built."""
    workspace = fl_ctx.get_prop(FLContextKey.WORKSPACE_OBJECT)
    job_id = fl_ctx.get_prop(FLContextKey.CURRENT_JOB_ID)
    if workspace is None or not job_id:
        return None
    run_dir = workspace.get_run_dir(job_id)
    app_root = fl_ctx.get_prop(FLContextKey.APP_ROOT) or workspace.get_app_dir(job_id)
    env_file = None
    args = fl_ctx.get_prop(FLContextKey.ARGS)
    env_name = getattr(args, "env", None)
    if isinstance(env_name, str) and env_name:
        env_file = os.path.join(app_root, env_name)
        real_run = os.path.realpath(run_dir)
        if not is_inside(os.path.realpath(env_file), real_run):
            env_file = None  # never read a file outside the job for the job
    return JobFolders(run_dir, app_root, workspace.get_result_root(job_id), env_file, os.getcwd())


def component_class(config: dict, node):
    """The class the configurator will build for ``config``; None if it names none (or cannot be loaded)."""
    from nvflare.fuel.utils.class_utils import load_class

    if not isinstance(config, dict) or config.get("disabled") is True:
        return None
    processor = getattr(node, "processor", None)
    try:
        if processor is not None and callable(getattr(processor, "get_class_path", None)):
            path = processor.get_class_path(config)
        else:
            path = config.get("path") or config.get("class_path")
        return load_class(path) if isinstance(path, str) and path else None
    except Exception:
        return None  # the build reports it


def is_server(fl_ctx: FLContext) -> bool:
    """The server's job process (or anything not clearly a client's: the stricter rule)."""
    workspace = fl_ctx.get_prop(FLContextKey.WORKSPACE_OBJECT)
    return getattr(workspace, "site_name", None) == SiteType.SERVER or not fl_ctx.get_prop(FLContextKey.CLIENT_NAME)


def _resources() -> Optional[dict]:
    """The site's resources.json as the job process read it (None before ConfigService is initialized)."""
    try:
        section = ConfigService.get_section(SystemConfigs.RESOURCES_CONF)
    except Exception:
        return None
    return section if isinstance(section, dict) else None


def check_component(fl_ctx: FLContext) -> List[str]:
    """Refusal lines for the component being built (empty: allowed). Each names the component, setting, path and rule."""
    config = fl_ctx.get_prop(FLContextKey.COMPONENT_CONFIG)
    node = fl_ctx.get_prop(FLContextKey.COMPONENT_NODE)
    cls = component_class(config, node)
    if cls is None:
        return []
    args = config.get("args") if isinstance(config.get("args"), dict) else {}
    if isinstance(args.get("class_attributes"), dict):
        args = args["class_attributes"]
    if not args and kind_of(cls) == COMPONENT:
        return []  # nothing configured (known rules' defaults are the class's own, and stay in the job)
    folders = job_folders(fl_ctx)
    if folders is None:
        return []
    at_server = is_server(fl_ctx)
    paths = configured_paths(cls, args, folders, at_server)
    if not paths:
        return []
    try:
        allowed = load_allowed_dirs()
        setting_problem = ""
    except ValueError as e:
        allowed, setting_problem = (), f" ({e}; no directory is allowed)"
    workspace = fl_ctx.get_prop(FLContextKey.WORKSPACE_OBJECT)
    job_id = fl_ctx.get_prop(FLContextKey.CURRENT_JOB_ID)
    zones = site_zones(workspace, str(job_id), folders.run_dir, _resources() if at_server else None)
    comp = config.get("id") or getattr(node, "key", "") or "?"
    who = f"{kind_of(cls)} {comp!r} ({cls.__name__})"
    return [
        f"refused {who}: {why}: {SITE_RULE if scope == SITE else RULE + setting_problem}"
        for why, scope in refused(paths, folders.run_dir, allowed, zones)
    ]


def refuse_outside_paths(fl_ctx: FLContext) -> str:
    """The build error for the component being built ("" = allowed), each refusal logged and audited.

    Called by upstream's authorize_build_component (the hook); an error while checking
    refuses the component rather than letting it through unchecked.
    """
    try:
        lines = check_component(fl_ctx)
    except Exception as e:
        from nvflare.security.logging import secure_format_exception

        lines = [f"could not check the component's file paths ({secure_format_exception(e)}): refused"]
    if not lines:
        return ""
    from nvflare.fuel.sec.audit import AuditService

    job_id = fl_ctx.get_prop(FLContextKey.CURRENT_JOB_ID)
    meta = fl_ctx.get_prop(FLContextKey.JOB_META)
    submitter = meta.get("submitter_name") if isinstance(meta, dict) else None
    for line in lines:
        _logger.error(f"Job {job_id}: {line}")
        AuditService.add_event(user=submitter or "system", action=AUDIT_ACTION, ref=str(job_id or ""), msg=line)
    return "; ".join(lines)
