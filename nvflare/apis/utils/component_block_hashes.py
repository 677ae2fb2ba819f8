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
"""Per-block sha256 of a stored component, recorded once, so a partial download can be checked.

Why: an interrupted download resumes from what the admin already wrote, but those bytes
must be verified, not trusted (a crash can leave garbage at the end of a file, and the
file may be an older version of the component). The whole-file sha256 cannot say which
prefix is good, and asking the server to hash a prefix on demand would let any admin make
it read gigabytes per request. So whoever measures a component's sha256 when it is stored
(the job's pre-hasher, the store, the backfill) measures the sha256 of each block in the
same pass, and the record carries the list; the admin client checks its partial file
against it locally, block by block, and keeps the longest verified prefix.

Blocks are ``MIN_BLOCK`` (64 MiB) or a power-of-two multiple of it, so that a record holds
at most ``MAX_BLOCKS`` hashes (8 KiB of job meta whatever the model's size); a resume
loses at most one block. The final sha256 check of the whole file stays what it was: the
block hashes only decide where a download may resume.
"""

import hashlib
from typing import List, Optional, Tuple

BLOCK_SIZE = "block_size"
BLOCK_SHA256 = "block_sha256"

MIN_BLOCK = 64 * 1024 * 1024
MAX_BLOCKS = 128


def block_size_for(size: int) -> int:
    """The block size recorded for a file of ``size`` bytes."""
    block = MIN_BLOCK
    while -(-size // block) > MAX_BLOCKS:
        block *= 2
    return block


def block_count(size: int, block: int) -> int:
    return max(1, -(-size // block))


class BlockSha256Counter:
    """sha256 of the whole stream, of each block of it, and its length: fed one buffer at a time.

    ``size`` must be the stream's length (known before reading: the file's st_size), so
    the block size is fixed from the first byte.
    """

    def __init__(self, size: int):
        self.block = block_size_for(size)
        self._whole = hashlib.sha256()
        self._current = hashlib.sha256()
        self._in_block = 0
        self.blocks: List[str] = []
        self.size = 0

    def update(self, data) -> None:
        self._whole.update(data)
        view = memoryview(data)
        while len(view):
            take = min(len(view), self.block - self._in_block)
            self._current.update(view[:take])
            self._in_block += take
            view = view[take:]
            if self._in_block == self.block:
                self.blocks.append(self._current.hexdigest())
                self._current, self._in_block = hashlib.sha256(), 0
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._whole.hexdigest()

    def block_hashes(self) -> List[str]:
        """The blocks' sha256 so far, the last (partial) block included if it has bytes."""
        if self._in_block or not self.blocks:
            return self.blocks + [self._current.hexdigest()]
        return list(self.blocks)

    def result(self) -> Tuple[str, int]:
        return self.hexdigest(), self.size

    def fields(self) -> dict:
        """The record fields: {block_size, block_sha256}."""
        return {BLOCK_SIZE: self.block, BLOCK_SHA256: self.block_hashes()}


def _is_hex64(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def recorded_blocks(record: Optional[dict]) -> Optional[Tuple[int, List[str]]]:
    """(block size, block hashes) of a record, or None when it has none or they do not fit its size.

    The record comes from the server: anything malformed counts as absent (the download
    then starts from the beginning, and the whole-file check is unchanged).
    """
    if not isinstance(record, dict):
        return None
    block, hashes, size = record.get(BLOCK_SIZE), record.get(BLOCK_SHA256), record.get("size")
    if type(block) is not int or type(size) is not int or block < MIN_BLOCK or block & (block - 1):
        return None
    if not isinstance(hashes, list) or len(hashes) != block_count(size, block) or not all(map(_is_hex64, hashes)):
        return None
    return block, hashes


def senders_block_fields(size: int, block, hashes) -> dict:
    """The block fields a job process sent for a file of ``size`` bytes, if well-formed and of the rule's size; else {}."""
    fields = {BLOCK_SIZE: block, BLOCK_SHA256: hashes, "size": size}
    if block != block_size_for(size) or recorded_blocks(fields) is None:
        return {}
    return {BLOCK_SIZE: block, BLOCK_SHA256: list(hashes)}
