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
"""The job's ``workspace`` archive without following anything the job planted.

The server parent archives a finished job's run folder (upstream's FilesystemStorage
``_write_multi``), and upstream's ``ZipFile.write`` follows symlinks: a job that leaves
``x -> /<server workspace>/signing/model_signing.key`` (or another job's stored model) in
its run folder gets the parent to copy that file into the archive, which its submitter
then downloads (``download_job``). In container deployments the parent can read files the
job cannot, so that would hand the job the very key that must stay out of its reach. A
FIFO would block the archive forever.

So, with the same member names and order as upstream: every entry is opened relative to
its directory's descriptor (``os.fwalk``, which does not follow directory symlinks) with
``O_NOFOLLOW``; a symlink, FIFO, socket or device is left out (and logged); a regular file
is read from the descriptor it was checked on. A regular file with more than one hard link
(another name may lie outside the run folder) is kept, and its member's comment says so
(``LINKED_MARK``), and the archive's comment (``ARCHIVE_MARK``) says it was written by
these rules, so model_backfill can refuse exactly what live publishing refuses.
"""

import errno
import logging
import os
import stat
import time
import zipfile
from typing import List

ARCHIVE_MARK = b"nvflare-fork workspace archive/1: symlinks and special files left out, hard links marked"
LINKED_MARK = b"nvflare-fork: hard-linked"
_LOG_LIMIT = 20  # left-out entries logged per archive (a job may plant many)

_logger = logging.getLogger(__name__)
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class _LeftOut:
    def __init__(self):
        self.count = 0

    def note(self, path: str, why: str):
        self.count += 1
        if self.count <= _LOG_LIMIT:
            _logger.warning(f"workspace archive: left out {path}: {why} (the archive never follows links)")


def _date_time(st) -> tuple:
    date_time = time.localtime(st.st_mtime)[0:6]
    return max(date_time, (1980, 1, 1, 0, 0, 0)) if date_time[0] < 2108 else (2107, 12, 31, 23, 59, 59)


def _add_file(z: zipfile.ZipFile, dir_fd, name: str, path: str, arcname: str, left_out: _LeftOut) -> None:
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        left_out.note(path, "a symlink" if e.errno == errno.ELOOP else f"cannot be opened ({e.strerror or e})")
        return
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            left_out.note(path, "not a regular file")
            return
        os.set_blocking(fd, True)
        info = zipfile.ZipInfo(arcname, _date_time(st))
        info.external_attr = (st.st_mode & 0xFFFF) << 16
        info.compress_type = z.compression
        info.file_size = st.st_size
        if st.st_nlink > 1:
            info.comment = LINKED_MARK
        with z.open(info, "w") as out:  # zip64 when file_size needs it (zipfile decides)
            while True:
                block = os.read(fd, 1 << 20)
                if not block:
                    break
                out.write(block)
    finally:
        os.close(fd)


def _add_dir_entry(z: zipfile.ZipFile, dir_fd, name: str, arcname: str) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    info = zipfile.ZipInfo(arcname.rstrip("/") + "/", _date_time(st))
    info.external_attr = ((st.st_mode & 0xFFFF) << 16) | 0x10
    z.writestr(info, b"")


def _add_tree(z: zipfile.ZipFile, base: str, left_out: _LeftOut) -> None:
    """Upstream's get_all_file_paths order: per directory, its files, then its subdirectories' entries."""
    for root, dirs, files, root_fd in os.fwalk(base, follow_symlinks=False):
        rel_root = os.path.relpath(root, base)
        prefix = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
        for name in files:
            _add_file(z, root_fd, name, os.path.join(root, name), prefix + name, left_out)
        for name in list(dirs):
            try:
                st = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):  # fwalk lists directory symlinks here and does not enter them
                left_out.note(os.path.join(root, name), "a symlink")
                continue
            _add_dir_entry(z, root_fd, name, prefix + name)


def write_workspace_sources(z: zipfile.ZipFile, content: List[str]) -> None:
    """What upstream's _write_multi writes for ``content`` (files and folders), by the rules above."""
    left_out = _LeftOut()
    z.comment = ARCHIVE_MARK
    for c in content:
        if os.path.isfile(c) and not os.path.islink(c):
            parent, name = os.path.split(os.path.abspath(c))
            dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                _add_file(z, dir_fd, name, c, name, left_out)
            finally:
                os.close(dir_fd)
        elif os.path.isdir(c):
            # the operator's workspace may sit behind a symlink; the folder itself must not be one
            parent, name = os.path.split(os.path.normpath(os.path.abspath(c)))
            _add_tree(z, os.path.join(os.path.realpath(parent), name), left_out)
        else:
            raise ValueError(f"items in content list must be existing file or directory paths but got {c!r}")
    if left_out.count > _LOG_LIMIT:
        _logger.warning(f"workspace archive: left out {left_out.count} entries in all")
