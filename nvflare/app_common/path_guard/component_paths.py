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
"""Which files any component a job configures may open, worked out from its configuration alone.

Why: a job's config is user input, and many allow-listed upstream components take file
or folder names from it: ``NPModelLocator`` loads ``model_name`` as given when it is
absolute (so ``CrossSiteModelEval`` could send another job's stored model to the sites
and save it in the attacker's run folder), receivers and writers put results in a
configured folder, readers open a configured file. persistor_path_guard checks what this
module finds before the component is built.

The general rule, for every string in a component's arguments (nested lists and dicts
included, nested component configs excluded: those are checked on their own):

- a value that *looks like a path* - absolute, starting with ``~``, climbing out with
  ``..``, holding an environment reference (``$HOME``, ``${X}``) that expands to
  something else, a ``file:`` or ``sqlite:`` URI, a ``${secret:file:...}`` reference -
  is a file the component may open, whatever the argument is called. A relative one is
  taken from the run folder, the app folder and the process's working directory (upstream
  job processes run in the site's workspace root), and each of them must pass;
- any other value of an argument whose name says path (``*path*``, ``*file*``, ``*dir*``,
  ``*folder*``, ``*ckpt*``, ``*checkpoint*``, ``*location*``, ``save_name``,
  ``model_name``) or that holds a path separator: taken from the run folder and the app
  folder (so a symlink there that leads out is caught), and from the working directory,
  where it must not reach the site's protected folders (``startup/``, ``local/``, other
  jobs' folders) - the folders a component that opens a name as given would reach.

Such a file is a *write* (it must stay in the run folder) unless the component is a
model locator (they only read). Where a component joins arguments itself, its own rule is
repeated (persistor_paths for persistors; NPModelLocator and JobLogStreamer here) and
replaces the general rule for the arguments it covers.

How far a file must stay: on the server, and for persistors and model locators on a
client, inside the job's run folder (reads also in the operator's allowed directories);
any other component on a client only outside the client's protected folders, because a
client's training data lives outside its workspace by design.

A job's own classes (loaded from its custom folder) are its code: they can open any file,
so checking their arguments proves nothing and they get no general rule (their upstream
bases' rules still apply).
"""

import os
import re
from typing import Iterator, List, Optional, Tuple
from urllib.parse import unquote, urlparse

from nvflare.app_common.model_publishing.run_folder_files import is_inside
from nvflare.app_common.path_guard.persistor_paths import (
    CONFINED,
    READ,
    SITE,
    WRITE,
    JobFolders,
    PersistorPath,
    class_path,
    effective_args,
    is_persistor,
    known_persistor_paths,
)

MODEL_LOCATOR = "nvflare.app_common.abstract.model_locator.ModelLocator"
PERSISTOR, LOCATOR, COMPONENT = "persistor", "model locator", "component"

PATH_NAMED = re.compile(
    r"path|file|dir|folder|ckpt|checkpoint|location|^save_name$|^model_name$", re.IGNORECASE
)  # upstream's argument names for files and folders
SECRET_FILE_REF = re.compile(r"\$\{secret:file:([^{}\s\x00]+)\}")  # upstream secret_utils.SECRET_REF_PATTERN's
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_FILE_SCHEMES = ("file", "sqlite")  # schemes whose URI names a local file (MLflow's tracking_uri)
_ENV_REF = re.compile(r"\$(\{[^}]*\}|[A-Za-z_])")


def kind_of(cls) -> str:
    if is_persistor(cls):
        return PERSISTOR
    if any(class_path(c) == MODEL_LOCATOR for c in getattr(cls, "__mro__", ())):
        return LOCATOR
    return COMPONENT


def is_job_code(cls, folders: JobFolders) -> bool:
    """Whether ``cls`` is defined in a file inside the job's run folder (its custom code)."""
    import inspect

    try:
        source = inspect.getsourcefile(cls) or inspect.getfile(cls)
    except (TypeError, OSError):
        return False
    return bool(source) and is_inside(os.path.realpath(source), os.path.realpath(folders.run_dir))


# -- components that join their arguments themselves -------------------------------------
def _np_locator(args: dict, folders: JobFolders) -> list:
    """NPModelLocator: an absolute model_name is loaded as given, a relative one from <run folder>/<model_dir>/."""
    names = args.get("model_name")
    if names is None:
        names = {"server": "server.npy"}
    elif isinstance(names, str):
        names = {"server": names}
    if not isinstance(names, dict):
        return []
    model_dir = args.get("model_dir")
    found = []
    for key, name in names.items():
        setting = "model_name" if len(names) == 1 and key == "server" else f"model_name.{key}"
        if not isinstance(name, str):
            continue
        if os.path.isabs(name):
            found.append(PersistorPath(setting, name, name, READ))
        elif isinstance(model_dir, str):
            path = os.path.join(folders.run_dir, model_dir, name)
            found.append(PersistorPath(f"model_dir/{setting}", f"{model_dir}/{name}", path, READ))
    return found


def _log_streamer(args: dict, folders: JobFolders) -> list:
    """JobLogStreamer: log_file_name is a file of the job's log folder (the run folder), streamed to the server."""
    name = args.get("log_file_name")
    if not isinstance(name, str) or not name:
        return []
    return [PersistorPath("log_file_name", name, os.path.join(folders.run_dir, name), READ)]


KNOWN = {
    "nvflare.app_common.np.np_model_locator.NPModelLocator": (_np_locator, {"model_dir", "model_name"}),
    "nvflare.app_common.logging.job_log_streamer.JobLogStreamer": (_log_streamer, {"log_file_name"}),
}


def _known_component_paths(cls, args: dict, folders: JobFolders) -> Optional[Tuple[list, set]]:
    for c in getattr(cls, "__mro__", ()):
        rule = KNOWN.get(class_path(c))
        if rule:
            return rule[0](effective_args(cls, args), folders), set(rule[1])
    return None


# -- the general rule ----------------------------------------------------------------------
def strings_in(value, setting: str) -> Iterator[Tuple[str, str]]:
    """(setting, string) for every string in an argument; nested component configs are skipped (checked on their own)."""
    if isinstance(value, str):
        yield setting, value
    elif isinstance(value, dict):
        if "path" in value or "class_path" in value:
            return
        for k, v in value.items():
            yield from strings_in(v, f"{setting}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from strings_in(v, f"{setting}[{i}]")


def _climbs_out(value: str) -> bool:
    return os.path.normpath(value).split(os.sep)[0] == ".."


def _expanded(value: str) -> Optional[str]:
    """The value with ``~`` and environment references expanded, if that changes it (no component does; a site might)."""
    if not (value.startswith("~") or _ENV_REF.search(value)):
        return None
    expanded = os.path.expanduser(os.path.expandvars(value))
    return expanded if expanded != value else None


def _uri_path(value: str) -> Optional[str]:
    """The local file a file:/sqlite: URI names; '' for any other URI (not a local file), None if not a URI."""
    m = _URI.match(value)
    if not m or len(m.group(1)) < 2:  # "C:" is not a scheme
        return None
    scheme = m.group(1).lower()
    if scheme == "file":
        return unquote(urlparse(value).path)
    if scheme == "sqlite":
        rest = value[len("sqlite:") :]
        return rest[3:] if rest.startswith("///") else ""
    return ""


def _looks_like_a_path(value: str) -> bool:
    return os.path.isabs(value) or value.startswith("~") or _climbs_out(value) or _expanded(value) is not None


def _bases(folders: JobFolders) -> List[str]:
    return [folders.run_dir, folders.app_root]


def _candidates(setting, value, name, access, scope, folders) -> List[PersistorPath]:
    """Where ``name`` (taken from ``value``) may be opened: as given if absolute, else from each base folder."""
    if os.path.isabs(name):
        return [PersistorPath(setting, value, name, access, scope=scope)]
    found = [PersistorPath(setting, value, os.path.join(b, name), access, scope=scope) for b in _bases(folders)]
    if folders.cwd:
        found.append(PersistorPath(setting, value, os.path.join(folders.cwd, name), access, scope=scope))
    return found


def general_paths(args: dict, folders: JobFolders, access: str, scope: str) -> List[PersistorPath]:
    """The general rule (module docstring) for ``args``."""
    found = []
    for arg, value in (args or {}).items():
        for setting, text in strings_in(value, str(arg)):
            for ref in SECRET_FILE_REF.findall(text):
                found += _candidates(setting, text, ref, READ, scope, folders)
            s = SECRET_FILE_REF.sub("", text)  # what is left of the value is checked as any other
            if not s:
                continue
            uri = _uri_path(s)
            if uri is not None:
                if uri:
                    found += _candidates(setting, text, uri, access, scope, folders)
                continue
            if _looks_like_a_path(s):
                for name in [e for e in [_expanded(s)] if e] + [s]:  # the expansion first: the likelier meaning
                    found += _candidates(setting, text, name, access, scope, folders)
            elif any(PATH_NAMED.search(part) for part in re.split(r"[.\[\]]", setting) if part) or os.sep in s:
                found += [
                    PersistorPath(setting, text, os.path.join(b, s), access, scope=scope) for b in _bases(folders)
                ]
                if folders.cwd:
                    found.append(PersistorPath(setting, text, os.path.join(folders.cwd, s), access, scope=SITE))
    return found


def configured_paths(cls, args: dict, folders: JobFolders, at_server: bool = True) -> List[PersistorPath]:
    """Every file (or folder) the component ``cls`` built with ``args`` may open, with how far each must stay."""
    kind = kind_of(cls)
    known = known_persistor_paths(cls, args, folders) or _known_component_paths(cls, args, folders)
    found, covered = known if known else ([], set())  # known rules' files must stay in the job, on every site
    scope = CONFINED if at_server or kind in (PERSISTOR, LOCATOR) else SITE
    if kind == COMPONENT and is_job_code(cls, folders):
        return found
    rest = {k: v for k, v in (args or {}).items() if k not in covered}
    return found + general_paths(rest, folders, READ if kind == LOCATOR else WRITE, scope)
