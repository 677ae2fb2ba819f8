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
"""Where a downloaded component lands, and what is already there.

The rule, chosen for how people re-run downloads: running the same download again is
the usual case (a script, a retry, "did I get the latest?"), and filling a disk with
``MODEL_global_model__1.pt``, ``__2``... copies of the same gigabytes helps nobody. So the
names the download could use - ``<component><extension>``, then ``__1``, ``__2``... up to
the first free one - are checked first: one that holds exactly the recorded bytes (same
size, same sha256, hashed here) means the component is already downloaded, and nothing
is transferred or written. A name holding other bytes is never replaced (it may be an
older version the user still needs, or a file they changed): the download takes the next
free name, and the console line says which file was kept and why.

Before anything is written the destination must have room: the bytes still to come plus
a small margin for the proof file and the file system's own blocks; otherwise the
download stops with both numbers and leaves nothing behind.
"""

import os
import shutil
from typing import Optional, Tuple

from nvflare.apis.utils.component_file_names import download_file_name
from nvflare.fuel.utils.file_digest import sha256_and_size

MAX_NAME_TRIES = 1000
# the proof file (a few KiB), the file system's metadata and rounding of the last block
SPACE_MARGIN = 1024 * 1024


class NotEnoughSpace(Exception):
    pass


def candidate_names(dest_dir: str, component: str, record: dict):
    """The names a download may use, in order: existing ones, then the first free one."""
    for i in range(MAX_NAME_TRIES):
        path = os.path.join(dest_dir, download_file_name(component, record, i))
        yield path
        if not os.path.lexists(path):
            return


def already_downloaded(dest_dir: str, component: str, record: dict) -> Tuple[Optional[str], Optional[str]]:
    """(a file holding exactly the recorded bytes, or None; the first name taken by other bytes, or None)."""
    size, sha = record.get("size"), record.get("sha256")
    other = None
    for path in candidate_names(dest_dir, component, record):
        if not os.path.lexists(path):
            break
        try:
            same = os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) == size
            if same and sha256_and_size(path) == (sha, size):
                return path, None
        except OSError:
            pass
        other = other or path
    return None, other


def check_space(dest_dir: str, component: str, needed: int, size: int, have: int) -> None:
    """Raise NotEnoughSpace (naming both numbers) unless ``dest_dir`` can take ``needed`` more bytes."""
    existing = os.path.abspath(dest_dir)
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)  # the folder is created only once the check passed
    free = shutil.disk_usage(existing).free
    if free >= needed + SPACE_MARGIN:
        return
    kept = f", {have} of them already in its partial file" if have else ""
    raise NotEnoughSpace(
        f"not enough free space in {dest_dir} for {component}: it needs {needed + SPACE_MARGIN} bytes "
        f"({size} bytes recorded{kept}, plus {SPACE_MARGIN} for its proof file and file-system overhead), "
        f"and {free} bytes are free"
    )


def claim_final_name(part_path: str, dest_dir: str, component: str, record: dict) -> str:
    """Give the verified ``part_path`` the first free download name, never replacing a file."""
    for candidate in candidate_names(dest_dir, component, record):
        try:
            os.link(part_path, candidate)  # fails if the name exists: no silent overwrite
        except FileExistsError:
            continue
        except OSError:
            # File systems without hard links: an exists-check then rename is the best left.
            if os.path.lexists(candidate):
                continue
            os.rename(part_path, candidate)
            return candidate
        os.unlink(part_path)
        return candidate
    first, last = download_file_name(component, record), download_file_name(component, record, MAX_NAME_TRIES - 1)
    raise FileExistsError(f"{first} and the names up to {last} all exist")
