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
"""Which files a job's model persistor will read and write, worked out from its configuration alone.

Why: upstream's persistors take file names from the job's config and join them onto a
folder of the job with ``os.path.join``, so an absolute name or one with ``..`` wins; a
config-only job could make the job process overwrite any file it can write, or load
another job's stored model as its own initial model. persistor_path_guard checks what
this module (and component_paths, for every other component) finds before the persistor
is even built.

How: each shipped persistor's own rule is repeated here (which argument, joined onto
which folder, read or written), with the class's own defaults for arguments the config
leaves out. Classes are matched through their MRO by upstream path, so a subclass (e.g.
LRModelPersistor, or a job's own subclass) is held to its base's rule. Arguments a known
rule does not cover, and persistors this module does not know, get component_paths'
general rule.
"""

import inspect
import json
import os
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

READ = "read"
WRITE = "write"

CUSTOM_FOLDER = "custom"  # upstream WorkspaceConstants.CUSTOM_FOLDER_NAME: relative checkpoints live there
ENV_CKPT_DIR = "APP_CKPT_DIR"  # upstream EnvironmentKey.CHECKPOINT_DIR
ENV_CKPT = "APP_CKPT"  # upstream EnvironmentKey.CHECKPOINT_FILE_NAME

LEARNABLE_PERSISTOR = "nvflare.app_common.abstract.learnable_persistor.LearnablePersistor"

# How far a path must stay (PersistorPath.scope)
CONFINED = "confined"  # inside the job's folder (reads: or an operator's allowed read directory)
SITE = "site"  # only kept out of the site's protected folders (the client's data lives elsewhere)


@dataclass(frozen=True)
class PersistorPath:
    """A file (or folder) a component's configuration makes it open; persistors' and every other component's."""

    setting: str  # the argument (or environment.json key) that names it
    value: object  # as the job configured it
    path: str  # where the component will open it (symlinks not yet resolved)
    access: str  # READ or WRITE
    root: Optional[str] = None  # the job folder it must stay in when not the run folder (the result root)
    scope: str = CONFINED


@dataclass(frozen=True)
class JobFolders:
    """The job's folders as its server process sees them."""

    run_dir: str
    app_root: str
    result_root: str
    env_file: Optional[str] = None  # the app's config/environment.json (PTFileModelPersistor reads it)
    cwd: str = ""  # the job process's working directory (upstream: the site's workspace root)

    def env(self) -> dict:
        """environment.json's content; {} when absent or unreadable (the persistor then fails on its own)."""
        if not self.env_file or not os.path.isfile(self.env_file):
            return {}
        try:
            with open(self.env_file) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def _join(folder: str, *names) -> Optional[str]:
    # os.path.join's rule, as the persistors apply it: an absolute name replaces the folder
    if not all(isinstance(n, str) for n in names):
        return None
    return os.path.join(folder, *names)


def _source_ckpt(args: dict, folders: JobFolders) -> list:
    """source_ckpt_file_full_name as PT and the numpy persistors resolve it (absolute, or in the app's custom/)."""
    src = args.get("source_ckpt_file_full_name")
    if not isinstance(src, str) or not src:
        return []
    path = src if os.path.isabs(src) else os.path.join(folders.app_root, CUSTOM_FOLDER, src)
    return [PersistorPath("source_ckpt_file_full_name", src, path, READ)]


def _pt(args: dict, folders: JobFolders) -> list:
    found = []
    env = folders.env()
    log_dir = folders.app_root
    ckpt_dir = env.get(ENV_CKPT_DIR)
    if ckpt_dir:
        log_dir = _join(folders.app_root, ckpt_dir) or folders.app_root
        found.append(PersistorPath(f"environment.json {ENV_CKPT_DIR}", ckpt_dir, log_dir, WRITE))  # os.makedirs
    for setting in ("global_model_file_name", "best_global_model_file_name"):
        path = _join(log_dir, args.get(setting))
        if path:
            found.append(PersistorPath(setting, args.get(setting), path, WRITE))
    preload = env.get(ENV_CKPT)
    if preload and isinstance(preload, str):
        found.append(
            PersistorPath(f"environment.json {ENV_CKPT}", preload, os.path.join(folders.app_root, preload), READ)
        )
    return found + _source_ckpt(args, folders)


def _tf(args: dict, folders: JobFolders) -> list:
    found = []
    path = _join(folders.app_root, args.get("save_name"))
    if path:
        found.append(PersistorPath("save_name", args.get("save_name"), path, WRITE))
    src = args.get("source_ckpt_file_full_name")
    if isinstance(src, str) and src:
        # TFModelPersistor opens it as given: relative to the job process's working directory
        found.append(PersistorPath("source_ckpt_file_full_name", src, os.path.abspath(src), READ))
    return found


def _np(args: dict, folders: JobFolders) -> list:
    found = []
    rel = _join(args.get("model_dir"), args.get("model_name")) if isinstance(args.get("model_dir"), str) else None
    if rel:
        value = f"{args.get('model_dir')}/{args.get('model_name')}"
        found.append(PersistorPath("model_dir/model_name", value, os.path.join(folders.run_dir, rel), READ))
        # saved under the job's result root: the run folder unless the operator set NVFLARE_RESULT_ROOT
        write = os.path.join(folders.result_root, rel)
        found.append(PersistorPath("model_dir/model_name", value, write, WRITE, root=folders.result_root))
    return found + _source_ckpt(args, folders)


def _np_file(args: dict, folders: JobFolders) -> list:
    found = []
    model_dir = args.get("model_dir")
    for setting, access in (
        ("model_file_name", READ),
        ("last_global_model_file_name", WRITE),
        ("best_global_model_file_name", WRITE),
    ):
        rel = _join(model_dir, args.get(setting)) if isinstance(model_dir, str) else None
        if rel:
            value = f"{model_dir}/{args.get(setting)}"
            found.append(PersistorPath(f"model_dir/{setting}", value, os.path.join(folders.run_dir, rel), access))
    return found + _source_ckpt(args, folders)


def _joblib(args: dict, folders: JobFolders) -> list:
    found = []
    path = _join(folders.app_root, args.get("save_name"))
    if path:
        found.append(PersistorPath("save_name", args.get("save_name"), path, WRITE))
    model_path, setting = args.get("model_path"), "model_path"
    if not model_path and isinstance(args.get("initial_params"), dict):
        model_path, setting = args["initial_params"].get("model_path"), "initial_params.model_path"
    if isinstance(model_path, str) and model_path:
        found.append(PersistorPath(setting, model_path, os.path.abspath(model_path), READ))
    return found


def _xgb(args: dict, folders: JobFolders) -> list:
    path = _join(folders.app_root, args.get("save_name"))
    return [PersistorPath("save_name", args.get("save_name"), path, WRITE)] if path else []


# Upstream class path -> (its rule, the arguments the rule covers)
KNOWN = {
    "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor": (
        _pt,
        {"global_model_file_name", "best_global_model_file_name", "source_ckpt_file_full_name"},
    ),
    "nvflare.app_opt.tf.model_persistor.TFModelPersistor": (_tf, {"save_name", "source_ckpt_file_full_name"}),
    "nvflare.app_common.np.np_model_persistor.NPModelPersistor": (
        _np,
        {"model_dir", "model_name", "source_ckpt_file_full_name"},
    ),
    "nvflare.app_common.ccwf.comps.np_file_model_persistor.NPFileModelPersistor": (
        _np_file,
        {
            "model_dir",
            "model_file_name",
            "last_global_model_file_name",
            "best_global_model_file_name",
            "source_ckpt_file_full_name",
        },
    ),
    "nvflare.app_opt.sklearn.joblib_model_param_persistor.JoblibModelParamPersistor": (
        _joblib,
        {"save_name", "model_path", "initial_params"},
    ),
    "nvflare.app_opt.xgboost.tree_based.model_persistor.XGBModelPersistor": (_xgb, {"save_name"}),
}


def class_path(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def is_persistor(cls) -> bool:
    return any(class_path(c) == LEARNABLE_PERSISTOR for c in getattr(cls, "__mro__", ()))


def known_rule(cls) -> Optional[tuple]:
    """(rule, covered arguments) of the nearest known upstream persistor in ``cls``'s MRO."""
    for c in getattr(cls, "__mro__", ()):
        rule = KNOWN.get(class_path(c))
        if rule:
            return rule
    return None


def effective_args(cls, args: dict) -> dict:
    """The constructors' defaults (a subclass's over its bases'), overridden by what the config sets.

    Bases count too: a subclass that passes ``**kwargs`` on still gets its base's defaults.
    """
    merged = {}
    for c in reversed(getattr(cls, "__mro__", (cls,))):
        init = vars(c).get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        for p in params:
            if p.default is not inspect.Parameter.empty:
                merged[p.name] = p.default
    merged.update(args or {})
    return merged


def known_persistor_paths(cls, args: dict, folders: JobFolders) -> Optional[Tuple[List[PersistorPath], set]]:
    """(files, arguments covered) by the nearest known upstream persistor's rule in ``cls``'s MRO; None if none."""
    rule = known_rule(cls) if is_persistor(cls) else None
    if rule is None:
        return None
    fn: Callable = rule[0]
    return fn(effective_args(cls, args), folders), set(rule[1])
