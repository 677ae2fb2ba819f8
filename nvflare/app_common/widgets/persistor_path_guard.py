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
"""Refuse to build a job's model persistor whose configured files lie outside the job's run folder.

Why: a job's config is user input. A lead without custom-code rights, on a server whose
operator allowed e.g. PTFileModelPersistor, could otherwise make the server's job process
overwrite any file it can write (absolute or ``..`` model file names) or load another
org's stored model as the job's initial model (``source_ckpt_file_full_name``).

When: upstream fires BEFORE_BUILD_COMPONENT to the site's own components (resources.json)
for every component of the job's config, after the config's variables are resolved and
the class allow-list has passed it, and before anything is constructed; a reason set in
COMPONENT_BUILD_ERROR fails the job the way upstream fails a job whose component is not
allowed. So the check runs before the persistor exists, let alone reads or writes a file.
The job model store (declared in the server's resources.json, built in each job's server
process too) forwards that event here.

The rule (RULE): every file a persistor will write must resolve, symlinks resolved and
``..`` collapsed, inside the job's run folder; a file it only reads (a checkpoint) may
also lie in a directory the operator lists in ``model_persistor_allowed_dirs``. Writes
outside the run folder are never allowed. persistor_paths says which files those are.
"""

import json
import os
from typing import List, Optional, Tuple

from nvflare.apis.fl_constant import FLContextKey, SystemConfigs
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.widgets.persistor_paths import READ, JobFolders, PersistorPath, persistor_paths
from nvflare.app_common.widgets.run_folder_files import is_inside
from nvflare.fuel.utils.config_service import ENV_VAR_PREFIX, ConfigService

ALLOWED_DIRS = "model_persistor_allowed_dirs"

RULE = (
    "a job's model persistor may write files only inside the job's own run folder, and read them only there "
    f"or in a directory of the server setting {ALLOWED_DIRS}"
)


def env_var_name(name: str) -> str:
    return (ENV_VAR_PREFIX + name).upper()


def load_allowed_dirs() -> Tuple[str, ...]:
    """The server's model_persistor_allowed_dirs (absolute directories); ValueError naming the key if invalid.

    From ``NVFLARE_MODEL_PERSISTOR_ALLOWED_DIRS`` (a JSON list, or directories separated
    by ``os.pathsep``) if set, else the top-level key of the server's local/resources.json
    (a JSON list). Default: none.
    """
    where = f"{ALLOWED_DIRS} (server local/resources.json or env {env_var_name(ALLOWED_DIRS)})"
    value = os.environ.get(env_var_name(ALLOWED_DIRS))
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
        value = section.get(ALLOWED_DIRS) if isinstance(section, dict) else None
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"invalid {where}: {value!r} must be a list of absolute directories")
    dirs = []
    for d in value:
        if not isinstance(d, str) or not os.path.isabs(d):
            raise ValueError(f"invalid {where}: {d!r} is not an absolute directory")
        if os.path.realpath(d) == os.sep:
            raise ValueError(f"invalid {where}: {d!r} would allow every file of the server")
        dirs.append(os.path.normpath(d))
    return tuple(dirs)


def problem(p: PersistorPath, run_dir: str, allowed_dirs) -> Optional[str]:
    """Why the rule refuses ``p``, or None when it may be used."""
    root = os.path.realpath(run_dir)
    folder = "run folder"
    if p.root and os.path.realpath(p.root) != root:
        root, folder = os.path.realpath(p.root), "result folder"
    real = os.path.realpath(p.path)
    if real == root or is_inside(real, root):
        return None
    if p.access == READ:
        for d in allowed_dirs:
            allowed = os.path.realpath(d)
            if real == allowed or is_inside(real, allowed):
                return None
    return f"{p.setting} {p.value!r} ({p.access}) resolves to {real!r}, outside the job's {folder} {root!r}"


def refusals(paths: List[PersistorPath], run_dir: str, allowed_dirs) -> List[str]:
    found = []
    for p in paths:
        why = problem(p, run_dir, allowed_dirs)
        if why and why not in found:
            found.append(why)
    return found


def job_folders(fl_ctx: FLContext) -> Optional[JobFolders]:
    """The job's folders, as its server process sees them while its config is being built."""
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
    return JobFolders(run_dir, app_root, workspace.get_result_root(job_id), env_file)


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


def check_component(fl_ctx: FLContext) -> List[str]:
    """Refusal lines for the component being built (empty: allowed). Each names the persistor, setting, path and rule."""
    config = fl_ctx.get_prop(FLContextKey.COMPONENT_CONFIG)
    node = fl_ctx.get_prop(FLContextKey.COMPONENT_NODE)
    cls = component_class(config, node)
    if cls is None:
        return []
    folders = job_folders(fl_ctx)
    if folders is None:
        return []
    args = config.get("args") if isinstance(config.get("args"), dict) else {}
    if isinstance(args.get("class_attributes"), dict):
        args = args["class_attributes"]
    paths = persistor_paths(cls, args, folders)
    if not paths:
        return []
    try:
        allowed = load_allowed_dirs()
        setting_problem = ""
    except ValueError as e:
        allowed, setting_problem = (), f" ({e}; no directory is allowed)"
    comp = config.get("id") or getattr(node, "key", "") or "?"
    who = f"persistor {comp!r} ({cls.__name__})"
    return [f"refused {who}: {why}: {RULE}{setting_problem}" for why in refusals(paths, folders.run_dir, allowed)]
