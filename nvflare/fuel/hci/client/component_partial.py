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
"""The partial file of a component download, and how a later attempt resumes from it.

Why: a multi-GB model over a real link is lost whole when the admin process dies, the
network drops or the server restarts. A download writes ``<final name>.part`` in the
destination folder (``MODEL_global_model.pt.part``); when it is interrupted the file stays,
and running the same command again (console, FLARE API, CLI: they share the handler)
continues from it.

What is kept is verified, not trusted: the record of a stored model carries the sha256 of
each block (component_block_hashes); the prefix of the partial file is hashed here, block
by block, and only the longest run of blocks that match from the start is kept; the rest
is cut off and fetched again. A partial file of another version of the component (or of
another job's component of the same name in the same folder) fails at its first block
and is discarded, with a message. A record without block hashes (components stored
before resumable downloads, site logs, which the server measures per download) cannot
vouch for any prefix: its partial file is discarded and the download starts over. Either
way the whole file's sha256 is still checked at the end, as before.

One download at a time writes a given partial file: it holds an exclusive ``flock`` on it
(released by the kernel when the process dies, so a killed download never blocks the next
one); a second download of the same component into the same folder is refused.

Stale partial files: a completed download renames its partial file to the final name; a
failed verification removes it; an interruption keeps it. Any download into a folder
removes the partial files there that no download holds and that were not written for
``STALE_AFTER`` (7 days), and the temp files ``<component>.part-<random>`` older versions
of the fork left behind, and says so.
"""

import errno
import fcntl
import os
import re
import time
from typing import List, Optional, Tuple

from nvflare.apis.utils.component_block_hashes import recorded_blocks
from nvflare.apis.utils.component_file_names import download_file_name
from nvflare.fuel.utils.background_hash import BackgroundHash
from nvflare.fuel.utils.file_digest import BLOCK, Sha256Counter

PART_SUFFIX = ".part"
STALE_AFTER = 7 * 24 * 3600
# what releases before resumable downloads left (tempfile.mkstemp names): never resumable
_OLD_TEMP = re.compile(r".+\.part-[A-Za-z0-9_]{8}")
_READ = 4 * BLOCK


class PartialBusy(Exception):
    """Another download holds the partial file."""


def partial_path(dest_dir: str, component: str, record: dict) -> str:
    return os.path.join(dest_dir, download_file_name(component, record) + PART_SUFFIX)


def _locked(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
            return False
        raise


class PartialFile:
    """The partial file of one download, opened and locked for writing."""

    def __init__(self, path: str):
        self.path = path
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        self.fd = os.open(path, flags, 0o600)
        try:
            if not _locked(self.fd):
                raise PartialBusy(f"another download is writing {path}: wait for it to finish, or stop it")
        except BaseException:
            os.close(self.fd)
            raise

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def resume_point(self, record: dict) -> Tuple[int, Sha256Counter, Optional[str]]:
        """(bytes kept, their sha256 counter, what to tell the user or None); the file is cut to the bytes kept."""
        have = self.size()
        counter = Sha256Counter()
        if have == 0:
            return 0, counter, None
        size = record.get("size")
        blocks = recorded_blocks(record)
        if blocks is None:
            self.truncate(0)
            return (
                0,
                counter,
                (
                    f"discarded the partial file {self.path} ({have} bytes): the component's record has no block "
                    "hashes (stored before resumable downloads, or measured by the server for this download), so "
                    "no part of it can be verified; downloading from the start"
                ),
            )
        kept, counter = self._verified_prefix(blocks, size, have)
        self.truncate(kept)
        if kept == 0:
            return (
                0,
                counter,
                (
                    f"discarded the partial file {self.path} ({have} bytes): it is not the beginning of this "
                    "component as the server holds it (another version, or another job's component of that name); "
                    "downloading from the start"
                ),
            )
        if kept < have:
            note = (
                f"resuming from byte {kept} of {size}: {self.path} held {have} bytes, "
                f"the first {kept} verified against the recorded block hashes"
            )
        else:
            note = f"resuming from byte {kept} of {size}: {self.path} verified against the recorded block hashes"
        return kept, counter, note

    def _verified_prefix(self, blocks, size: int, have: int) -> Tuple[int, Sha256Counter]:
        """(bytes at the start that match whole recorded blocks, the sha256 counter of exactly those)."""
        import hashlib

        block, hashes = blocks
        counter = Sha256Counter()
        whole = BackgroundHash(counter, name="partial_prefix_hash")  # the two hashes on two cores
        kept = 0
        try:
            for i, expected in enumerate(hashes):
                end = min(size, (i + 1) * block)
                if end > have:
                    break
                digest = hashlib.sha256()
                offset = i * block
                while offset < end:
                    data = os.pread(self.fd, min(_READ, end - offset), offset)
                    if not data:
                        break
                    digest.update(data)
                    whole.update(data)
                    offset += len(data)
                if offset < end or digest.hexdigest() != expected:
                    break
                kept = end
        finally:
            whole.finish()
        if kept != counter.size:
            # a block that did not verify was fed to the whole-file hash: hash the kept prefix alone
            counter = Sha256Counter()
            for offset in range(0, kept, _READ):
                counter.update(os.pread(self.fd, min(_READ, kept - offset), offset))
        return kept, counter

    def truncate(self, length: int) -> None:
        os.ftruncate(self.fd, length)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None

    def remove(self) -> None:
        """Remove the file (while still holding it, so no other download takes it meanwhile)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.close()


def remove_stale_partials(dest_dir: str, now: Optional[float] = None, keep: str = "") -> List[str]:
    """Remove stale partial files in ``dest_dir`` (the rule in the module docstring); the paths removed."""
    now = time.time() if now is None else now
    removed = []
    try:
        names = os.listdir(dest_dir)
    except OSError:
        return removed
    for name in names:
        path = os.path.join(dest_dir, name)
        if path == keep or not (name.endswith(PART_SUFFIX) or _OLD_TEMP.fullmatch(name)):
            continue
        try:
            st = os.lstat(path)
            if not os.path.isfile(path) or os.path.islink(path) or now - st.st_mtime < STALE_AFTER:
                continue
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            try:
                if _locked(fd):  # no download holds it
                    os.unlink(path)
                    removed.append(path)
            finally:
                os.close(fd)
        except OSError:
            continue
    return removed
