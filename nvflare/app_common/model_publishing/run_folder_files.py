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
"""The one rule for which files model publishing may touch: regular files inside the job's run folder.

Why: a persistor's model paths are job configuration, i.e. user input. Upstream's
PTFileModelPersistor joins its run folder with ``best_global_model_file_name``, so an
absolute name (``/.../startup/server.key``) or one with ``..`` wins, and a job with custom
code can plant symlinks. Whatever reads, hashes, streams, links or deletes a model file
for publishing - the job's server process (publisher, pre-hasher, FL-context fallback)
and, independently, the job model store in the server parent - goes through this module.

How: a file is opened once (never following a FIFO or a device into a blocking open), and
every check is made on the open descriptor: ``fstat`` says it is a regular file with a
single hard link (a second link could be a name outside the run folder), and the kernel's
name for the descriptor (``/proc/self/fd/N``) says where it really is. Everything after
that reads from the descriptor (``pread``), links it through ``/proc/self/fd/N`` and
checks the link's (device, inode), or deletes by name relative to a verified directory
descriptor after checking (device, inode): a path is never resolved a second time, so
swapping a file or a symlink after the check changes nothing.

Every refusal is a ``RefusedFile`` whose message names the path, what is wrong with it
and the rule (``RULE``), so the log line alone explains it.
"""

import errno
import os
import shutil
import stat

from nvflare.fuel.utils.file_digest import fd_sha256_and_size, pread_blocks

RULE = "only a regular file inside the job's own run folder may be published"

_PROC_FD = "/proc/self/fd"
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_NONBLOCK", 0)


class RefusedFile(Exception):
    """A path the rule refuses; the message names the path, the reason and the rule."""

    def __init__(self, path, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path!r} {reason}: {RULE}")


def real_run_folder(run_dir: str) -> str:
    """The run folder's real path (symlinks in the workspace root itself are the operator's)."""
    return os.path.realpath(run_dir)


def is_inside(real_path: str, real_root: str) -> bool:
    """True if ``real_path`` lies strictly below ``real_root`` (both already real paths)."""
    return real_path.startswith(real_root.rstrip(os.sep) + os.sep)


def fd_real_path(fd: int) -> str:
    """Where the kernel says an open descriptor's file is (its name at open time, renames followed)."""
    return os.readlink(f"{_PROC_FD}/{fd}")


def _has_proc_fd() -> bool:
    return os.path.isdir(_PROC_FD)


class RunFolderFile:
    """A model file opened once and checked on its descriptor; read, link, copy and hash it from here.

    Use ``open_in_run_folder``; close it (or use it as a context manager) when done.
    """

    def __init__(self, fd: int, path: str, real_path: str, run_folder: str, st: os.stat_result):
        self.fd = fd
        self.path = path  # as the caller named it
        self.real_path = real_path  # as the kernel named the opened file
        self.run_folder = run_folder  # real path of the run folder it is inside
        self.stat = st

    # -- what it is --------------------------------------------------------------------
    @property
    def relative_path(self) -> str:
        """Its path relative to the run folder (what the store resolves under its own view of the folder)."""
        return os.path.relpath(self.real_path, self.run_folder)

    @property
    def dev_ino(self) -> tuple:
        return self.stat.st_dev, self.stat.st_ino

    def identity(self) -> list:
        """file_identity() of the opened file, as it is now (fstat)."""
        from nvflare.app_common.model_publishing.model_publish_defs import stat_identity

        return stat_identity(os.fstat(self.fd))

    # -- reading -----------------------------------------------------------------------
    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def sha256_and_size(self):
        return fd_sha256_and_size(self.fd)

    def copy_to(self, dest: str) -> None:
        """Write the opened file's bytes to a new file ``dest`` (created exclusively).

        A failed copy (a full volume) leaves nothing at ``dest``: no partial file.
        """
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            for block in pread_blocks(self.fd):
                view = memoryview(block)
                while view:
                    view = view[os.write(out, view) :]
        except BaseException:
            os.close(out)
            os.unlink(dest)
            raise
        os.close(out)

    def link_to(self, dest: str) -> bool:
        """Hard-link the opened file as ``dest``; True if ``dest`` is now that very inode.

        Links through the descriptor (``/proc/self/fd/N``) where the kernel allows it, else
        the real path without following a final symlink; either way ``dest``'s (device,
        inode) must then equal the descriptor's. False (and nothing left at ``dest``) when
        linking is impossible or gave another file (the path was swapped): copy instead.
        """
        linked = False
        if _has_proc_fd():
            try:
                os.link(f"{_PROC_FD}/{self.fd}", dest, follow_symlinks=True)
                linked = True
            except OSError:
                pass  # e.g. EXDEV on some kernels and overlay filesystems
        if not linked:
            try:
                os.link(self.real_path, dest, follow_symlinks=False)
            except OSError:
                return False
        st = os.stat(dest, follow_symlinks=False)
        if (st.st_dev, st.st_ino) != self.dev_ino:
            os.remove(dest)
            return False
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_in_run_folder(path, run_dir: str):
    """A first look, without opening: (real run folder, full path), or ``RefusedFile`` if ``path`` leads outside.

    Refuses a path outside before it is opened at all (opening a device or a FIFO elsewhere
    can have effects of its own). Not the authority: ``open_in_run_folder``'s checks on the
    descriptor are. ``path`` may be absolute or relative to the run folder.
    """
    if not isinstance(path, str) or not path or "\x00" in path:
        raise RefusedFile(path, "is not a file path")
    root = real_run_folder(run_dir)
    full = path if os.path.isabs(path) else os.path.join(root, path)
    resolved = os.path.realpath(full)
    if not is_inside(resolved, root):
        raise RefusedFile(path, f"resolves to {resolved!r}, outside the job's run folder {root!r}")
    return root, full


def open_in_run_folder(path, run_dir: str) -> RunFolderFile:
    """Open ``path`` once and check it on the descriptor; ``RefusedFile`` if the rule refuses it.

    ``path`` may be absolute or relative to the run folder. OSError (e.g.
    FileNotFoundError) means the file is not there for this process, which is not a
    refusal: the caller decides (the publisher skips it, the store asks for a stream).
    """
    root, full = check_in_run_folder(path, run_dir)
    fd = os.open(full, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RefusedFile(path, "is not a regular file")
        real = _real_path_of(fd, full, st)
        if not is_inside(real, root):
            raise RefusedFile(path, f"resolves to {real!r}, outside the job's run folder {root!r}")
        if st.st_nlink != 1:
            raise RefusedFile(path, f"has {st.st_nlink} hard links (another name may lie outside the run folder)")
        os.set_blocking(fd, True)
        return RunFolderFile(fd, path, real, root, st)
    except BaseException:
        os.close(fd)
        raise


def _real_path_of(fd: int, full: str, st) -> str:
    if _has_proc_fd():
        real = fd_real_path(fd)
        if real.endswith(" (deleted)") or not os.path.isabs(real):
            raise RefusedFile(full, "was removed or replaced while it was opened")
        return real
    # No /proc: the resolved path must still name the very file that is open.
    real = os.path.realpath(full)
    now = os.stat(real, follow_symlinks=False)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        raise RefusedFile(full, "was replaced while it was opened")
    return real


def remove_from_run_folder(opened: RunFolderFile) -> None:
    """Delete the file ``opened`` names, only if that name is still this very file inside the run folder.

    Opens the parent directory (no symlinks in its last part), checks the directory's real
    path is the run folder or inside it, checks the entry is a regular file with the opened
    file's (device, inode), and unlinks the entry relative to that directory descriptor.
    Nothing outside the run folder can be removed, whatever was swapped meanwhile.
    ``RefusedFile`` when a check fails; FileNotFoundError when it is already gone.
    """
    parent, name = os.path.split(opened.real_path)
    try:
        dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise RefusedFile(opened.real_path, "is no longer in its folder (the folder was replaced)")
        raise
    try:
        where = fd_real_path(dir_fd) if _has_proc_fd() else os.path.realpath(parent)
        if not (where == opened.run_folder or is_inside(where, opened.run_folder)):
            raise RefusedFile(opened.real_path, f"is in {where!r}, outside the job's run folder {opened.run_folder!r}")
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != opened.dev_ino:
            raise RefusedFile(opened.real_path, "is no longer the published file")
        os.unlink(name, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def create_in_run_folder(run_dir: str, subdir: str, name: str):
    """A new file ``<run folder>/<subdir>/<name>`` opened for writing, created safely; (file object, path).

    ``subdir`` is one plain name. The directory is created if missing, opened without
    following a symlink, and must really be that directory of the run folder; the file is
    created exclusively (O_EXCL, O_NOFOLLOW) relative to the directory's descriptor, so a
    planted symlink or an existing file is never written through.
    """
    if os.sep in subdir or subdir in ("", ".", "..") or os.sep in name or name in ("", ".", ".."):
        raise RefusedFile(os.path.join(subdir, name), "is not a plain name inside the run folder")
    root = real_run_folder(run_dir)
    root_fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    try:
        try:
            os.mkdir(subdir, 0o700, dir_fd=root_fd)
        except FileExistsError:
            pass
        try:
            dir_fd = os.open(subdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise RefusedFile(os.path.join(root, subdir), "is not a directory of the run folder (a symlink?)")
            raise
    finally:
        os.close(root_fd)
    try:
        expected = os.path.join(root, subdir)
        where = fd_real_path(dir_fd) if _has_proc_fd() else os.path.realpath(expected)
        if where != expected:
            raise RefusedFile(expected, f"resolves to {where!r}, not the run folder's own directory")
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    return os.fdopen(fd, "wb"), os.path.join(expected, name)


def remove_run_folder_dir(run_dir: str, subdir: str) -> None:
    """Remove ``<run folder>/<subdir>`` and its content, never following a symlink out of it."""
    root = real_run_folder(run_dir)
    path = os.path.join(root, subdir)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        # rmtree's fd-based implementation does not follow symlinks inside the tree
        shutil.rmtree(path, ignore_errors=True)
