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
"""The one rule for the name a downloaded component gets on the admin's disk.

Why: framework loaders go by the extension. Keras 3 refuses ``MODEL_global_model`` and
accepts only ``*.weights.h5``/``*.keras``/``*.h5``; ``np.load`` needs ``.npy``/``.npz`` to
know what it reads. So a component whose record names its original file is saved as
``<component><original extension(s)>``, e.g. ``MODEL_global_model.weights.h5``; a
component without a record (site logs, models stored by older versions) keeps its bare
name, as before. Taken names get ``__1``, ``__2``... before the extension
(``MODEL_global_model__1.weights.h5``) so the copy still loads.

The recorded file name comes from the server (and, before that, from a job's persistor
configuration: user input). Only an extension is ever derived from it, and only one made
of plain parts: the name itself, its folders, dots, control characters or anything else
in it never reach the filesystem. The console handler, the FLARE API and ``nvflare job
download --component`` all name files through this module.
"""

import re
from typing import Optional

# One extension part: letters and digits, as in .pt .npz .h5 .weights .keras .gz.
_PART = re.compile(r"[A-Za-z0-9]{1,16}")
MAX_PARTS = 2  # ".weights.h5", ".tar.gz"; a third part is never kept
MAX_EXTENSION_LENGTH = 24


def safe_extension(file_name) -> str:
    """The extension(s) to keep from a recorded file name: '' unless plain and short.

    Rule: of the name's last path segment (after the last '/' or '\\'), the last
    ``MAX_PARTS`` dot-separated parts, taken from the end while each is 1-16 ASCII letters
    or digits; the part in front of them (the stem) must be non-empty and not only dots;
    the whole extension is at most ``MAX_EXTENSION_LENGTH`` characters. Otherwise nothing.
    """
    if not isinstance(file_name, str) or not file_name:
        return ""
    base = re.split(r"[/\\]", file_name)[-1]
    parts = base.split(".")
    if len(parts) < 2:
        return ""
    kept = []
    # parts[0] is always stem; never take it as an extension
    for part in reversed(parts[1:]):
        if len(kept) == MAX_PARTS or not _PART.fullmatch(part):
            break
        kept.insert(0, part)
    if not kept:
        return ""
    stem = ".".join(parts[: len(parts) - len(kept)])
    if not stem.strip("."):
        return ""  # ".bashrc", "..pt", "...": no real stem
    extension = "." + ".".join(kept)
    return extension if len(extension) <= MAX_EXTENSION_LENGTH else ""


def download_extension(record: Optional[dict]) -> str:
    """The extension a downloaded component gets from its record ('' without a stored record).

    Only a record the job store holds (with its sha256; ``recorded`` not False) names an
    original file; the server measures the others on the fly and names them after the
    component. Works on a download's record and on a list_job_component_info row alike.
    """
    if not isinstance(record, dict) or record.get("recorded") is False or "sha256" not in record:
        return ""
    return safe_extension(record.get("file_name"))


def download_file_name(component: str, record: Optional[dict], n: int = 0) -> str:
    """The file name of a downloaded ``component``: ``n`` > 0 for the n-th free-name try.

    ``<component><extension>``, or ``<component>__<n><extension>`` when that is taken; a
    component whose name already ends with the extension does not get it twice
    (``MODEL_bundle.zip`` stays ``MODEL_bundle.zip``, then ``MODEL_bundle__1.zip``).
    """
    extension = download_extension(record)
    stem = component[: -len(extension)] if extension and component.endswith(extension) else component
    return f"{stem}{f'__{n}' if n else ''}{extension}"
