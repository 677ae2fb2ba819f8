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
"""Import hook of an editable install (``pip install -e .``), copied into its wheel by setup.py.

Upstream's files and the patched ones are installed in site-packages as built. The
overlay's modules live inside upstream's packages (nvflare/app_common/widgets/...), so a
plain path entry cannot serve them from the repo: this finder, first on sys.meta_path,
answers for any ``nvflare.*`` module whose file exists in the repo's overlay and leaves
every other name to the normal machinery. Overlay edits, new overlay modules and removed
ones take effect at the next import, without reinstalling.

Patches are applied at build time, so a change to patches/ or upstream.json needs
``pip install -e .`` again; importing nvflare then fails with that instruction instead of
running a mix of old patched files and new overlay code.
"""

import hashlib
import importlib.abc
import importlib.util
import os
import sys

CONFIG = {}  # setup.py appends the real one: {"repo", "stamp", "version"}


class StaleEditableInstall(ImportError):
    pass


def current_stamp(repo: str) -> str:
    """setup.py's patches_stamp(), recomputed from the repo (standard library only)."""
    pin = os.path.join(repo, "upstream.json")
    patches = os.path.join(repo, "patches")
    with open(pin, "rb") as f:
        h = hashlib.sha256(f.read())
    names = ["series"]
    series = os.path.join(patches, "series")
    if os.path.isfile(series):
        with open(series, encoding="utf-8") as f:
            for line in f.read().splitlines():
                line = line.split(" #", 1)[0].strip()
                if line and not line.startswith("#"):
                    names.append(line)
    for name in names:
        path = os.path.join(patches, name)
        data = b"<missing>"
        if os.path.isfile(path):
            with open(path, "rb") as f:
                data = f.read()
        h.update(name.encode() + b"\0" + data + b"\0")
    return h.hexdigest()


class OverlayFinder(importlib.abc.MetaPathFinder):
    def __init__(self, repo: str, stamp: str):
        self.overlay = os.path.join(repo, "nvflare")
        self.repo = repo
        self.stamp = stamp

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "nvflare":
            self.check_fresh()
            return None
        if not fullname.startswith("nvflare."):
            return None
        base = os.path.join(self.overlay, *fullname.split(".")[1:])
        init = os.path.join(base, "__init__.py")
        if os.path.isfile(init):
            return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[base])
        if os.path.isfile(base + ".py"):
            return importlib.util.spec_from_file_location(fullname, base + ".py")
        return None

    def check_fresh(self):
        if not os.path.isfile(os.path.join(self.repo, "upstream.json")):
            raise StaleEditableInstall(
                f"nvflare is installed in editable mode from {self.repo}, which is gone: "
                f"reinstall it (pip install -e <repo> or pip install <wheel>)"
            )
        if current_stamp(self.repo) != self.stamp:
            raise StaleEditableInstall(
                f"the editable nvflare install is stale: patches/ or upstream.json in {self.repo} changed "
                f"since it was built (patches are applied at build time; overlay edits need no rebuild). "
                f"Run: pip install -e {self.repo}"
            )


def install():
    if CONFIG and not any(isinstance(f, OverlayFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, OverlayFinder(CONFIG["repo"], CONFIG["stamp"]))
