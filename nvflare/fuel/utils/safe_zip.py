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
"""Read single members of an archive nobody vouches for, without ever unpacking it.

A job's stored ``workspace`` archive was written by the server, but it sits in the job
store as a plain file and the job's own code chose the names and bytes inside it. Before
anything is read, the whole central directory is checked: an archive with an absolute
path, a ``..`` component, a backslash, a symbolic link or other special file, an
encrypted entry, the same name twice, too many entries, or entries that declare more
bytes or a higher expansion ratio than any workspace archive has (upstream stores members
uncompressed) is refused as a whole, with the offending entry named. A member is then
read by name only, into a file the caller names, counting the bytes as they come: more
bytes than declared, or fewer, or a bad CRC refuses it and the partial file is removed.
"""

import os
import posixpath
import re
import stat
import zipfile
from dataclasses import dataclass
from typing import Dict, Optional

from nvflare.fuel.utils.file_digest import Sha256Counter

_BLOCK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveRefused(Exception):
    """The archive (or one of its members) is not safe to read; the message says why."""


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int = 200_000
    max_member_size: int = 1 << 40  # 1 TiB declared for one member
    max_total_size: int = 1 << 42  # 4 TiB declared in all
    max_ratio: float = 200.0  # uncompressed / compressed, for members above ratio_floor
    ratio_floor: int = 1 << 20


def _entry_problem(name: str, info: zipfile.ZipInfo) -> Optional[str]:
    if not name or "\x00" in name:
        return "has an empty or NUL-containing name"
    if "\\" in name:
        return "has a backslash in its name"
    if name.startswith("/") or _DRIVE.match(name):
        return "is an absolute path"
    if ".." in name.split("/"):
        return "contains '..'"
    if info.flag_bits & 0x1:
        return "is encrypted"
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"is not a regular file or folder (mode {oct(mode)})"
    return None


def normalized(name: str) -> str:
    """The member name as a relative POSIX path ('a/./b//c' -> 'a/b/c'; folders without '/')."""
    path = posixpath.normpath(name) if name else ""
    return "" if path == "." else path


class SafeZip:
    """A zip archive whose every entry passed the checks; members are read by name."""

    def __init__(self, path: str, limits: ZipLimits = ZipLimits(), label: str = "archive"):
        self.label = label
        self.limits = limits
        self._file = open(path, "rb")
        try:
            st = os.fstat(self._file.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ArchiveRefused(f"{label}: not a regular file")
            self.archive_size = st.st_size
            try:
                self._zip = zipfile.ZipFile(self._file)
            except (zipfile.BadZipFile, OSError, ValueError) as e:
                raise ArchiveRefused(f"{label}: not a readable zip archive ({e})") from None
            self.members: Dict[str, zipfile.ZipInfo] = {}
            self._check()
        except BaseException:
            self._file.close()
            raise

    def _refuse(self, msg: str):
        raise ArchiveRefused(f"{self.label}: {msg}")

    def _check(self):
        infos = self._zip.infolist()
        lim = self.limits
        if len(infos) > lim.max_entries:
            self._refuse(f"it has {len(infos)} entries, more than the limit of {lim.max_entries}")
        total = compressed = 0
        for info in infos:
            name = info.filename
            problem = _entry_problem(name, info)
            if problem:
                self._refuse(f"entry {name!r} {problem}")
            key = normalized(name)
            if key in self.members:
                self._refuse(f"entry {name!r} appears more than once")
            if info.file_size > lim.max_member_size:
                self._refuse(
                    f"entry {name!r} declares {info.file_size} bytes, more than the limit of {lim.max_member_size}"
                )
            if info.file_size > lim.ratio_floor and info.file_size > lim.max_ratio * max(info.compress_size, 1):
                ratio = info.file_size / max(info.compress_size, 1)
                self._refuse(
                    f"entry {name!r} expands {ratio:.0f}x ({info.compress_size} to {info.file_size} bytes), "
                    f"more than the limit of {lim.max_ratio:.0f}x (zip bomb?)"
                )
            total += info.file_size
            compressed += info.compress_size
            if key:
                self.members[key] = info
        if total > lim.max_total_size:
            self._refuse(f"its entries declare {total} bytes in all, more than the limit of {lim.max_total_size}")
        if compressed > self.archive_size:
            self._refuse(
                f"its entries' compressed sizes add up to {compressed} bytes, more than the archive's "
                f"{self.archive_size} (overlapping entries: zip bomb?)"
            )

    def close(self):
        self._zip.close()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def comment(self) -> bytes:
        """The archive's comment (the fork's workspace archive says how it was written)."""
        return self._zip.comment

    def member_comment(self, name: str) -> bytes:
        return self.members[normalized(name)].comment

    def is_file(self, name: str) -> bool:
        info = self.members.get(normalized(name))
        return info is not None and not info.is_dir()

    def size(self, name: str) -> int:
        return self.members[normalized(name)].file_size

    def _open_member(self, name: str):
        info = self.members.get(normalized(name))
        if info is None or info.is_dir():
            raise ArchiveRefused(f"{self.label}: no file {name!r}")
        return info, self._zip.open(info)

    def _blocks(self, name: str, limit: Optional[int] = None):
        info, src = self._open_member(name)
        declared = info.file_size
        if limit is not None and declared > limit:
            raise ArchiveRefused(f"{self.label}: entry {name!r} declares {declared} bytes, more than {limit}")
        seen = 0
        try:
            with src:
                while True:
                    block = src.read(_BLOCK)
                    if not block:
                        break
                    seen += len(block)
                    if seen > declared:
                        raise ArchiveRefused(f"{self.label}: entry {name!r} holds more bytes than it declares")
                    yield block
        except zipfile.BadZipFile as e:
            raise ArchiveRefused(f"{self.label}: entry {name!r} is corrupt ({e})") from None
        except (zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError) as e:
            raise ArchiveRefused(f"{self.label}: entry {name!r} cannot be read ({e})") from None
        if seen != declared:
            raise ArchiveRefused(f"{self.label}: entry {name!r} holds {seen} bytes but declares {declared}")

    def read(self, name: str, limit: int) -> bytes:
        """A small member (a config file) in memory; refused if it declares more than ``limit`` bytes."""
        return b"".join(self._blocks(name, limit))

    def extract_to(self, name: str, dest: str, counter=None) -> tuple:
        """Write member ``name`` to the new file ``dest``; (sha256, size). ``dest`` must not exist.

        ``counter``: what hashes the bytes (a Sha256Counter unless the caller needs more,
        e.g. the block hashes of component_block_hashes).
        """
        counter = counter or Sha256Counter()
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                for block in self._blocks(name):
                    out.write(block)
                    counter.update(block)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            if os.path.exists(dest):
                os.remove(dest)
            raise
        return counter.result()
