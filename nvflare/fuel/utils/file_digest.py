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
"""sha256 and byte count of a file, the one way the fork measures them.

A model's record (sha256, size) is measured by the publisher, the store, the download
command, the admin client, the backfill and ``nvflare model verify``; the build checks the
upstream wheel the same way. Each measurement must agree with the others to the byte, so
they all read in the same blocks through these functions: a path, an open descriptor
(read with pread, so a caller's file position and a concurrent reader do not matter), or
blocks that arrive from elsewhere (a download, an archive member) fed to a
``Sha256Counter`` as they pass.

Standard library only: setup.py loads this file by path inside pip's isolated build,
where no nvflare is installed.
"""

import hashlib
import os
from typing import Iterator, Tuple

BLOCK = 1 << 20  # 1 MiB: constant memory whatever the file's size


class Sha256Counter:
    """sha256 and length of a stream of blocks, fed one block at a time."""

    def __init__(self):
        self._digest = hashlib.sha256()
        self.size = 0

    def update(self, block: bytes) -> None:
        self._digest.update(block)
        self.size += len(block)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def result(self) -> Tuple[str, int]:
        """(hex sha256, size in bytes) of what was fed so far."""
        return self._digest.hexdigest(), self.size


def pread_blocks(fd: int, offset: int = 0, block: int = BLOCK) -> Iterator[bytes]:
    """The bytes of an open descriptor from ``offset`` to its end, ``block`` bytes at a time (pread)."""
    while True:
        data = os.pread(fd, block, offset)
        if not data:
            return
        yield data
        offset += len(data)


def blocks_sha256_and_size(blocks) -> Tuple[str, int]:
    """(hex sha256, size) of the concatenated ``blocks``."""
    counter = Sha256Counter()
    for block in blocks:
        counter.update(block)
    return counter.result()


def sha256_and_size(path) -> Tuple[str, int]:
    """(hex sha256, size in bytes) of the file at ``path``, read in 1 MiB blocks."""
    with open(path, "rb") as f:
        return blocks_sha256_and_size(iter(lambda: f.read(BLOCK), b""))


def fd_sha256_and_size(fd: int) -> Tuple[str, int]:
    """(hex sha256, size) of an open descriptor's whole file, whatever its current position."""
    return blocks_sha256_and_size(pread_blocks(fd))
