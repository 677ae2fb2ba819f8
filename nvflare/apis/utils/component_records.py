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
"""What the job store recorded about a component: sha256, size, original file name, format.

The record is how a downloader knows it got the bytes that were stored, not merely bytes
that arrived: the publisher writes it when it stores a model, the download command sends
it ahead of the data, and the admin client checks it before the file gets its final name.
Records live in the job's meta under one key, so they survive restarts with the job and
vanish with it when the job is deleted.
"""

import os
from typing import Optional

from nvflare.apis.utils.component_block_hashes import BlockSha256Counter
from nvflare.fuel.utils.file_digest import pread_blocks

# Job meta key holding {component name: record}.
COMPONENT_RECORDS_KEY = "component_records"

SHA256 = "sha256"
SIZE = "size"
FILE_NAME = "file_name"
FORMAT = "format"


def make_record(path: str, file_name: Optional[str] = None, model_format: Optional[str] = None, **extra) -> dict:
    """A record for the file at ``path`` (hash, block hashes and size measured now, in one pass)."""
    with open(path, "rb") as f:
        counter = BlockSha256Counter(os.fstat(f.fileno()).st_size)
        for block in pread_blocks(f.fileno()):
            counter.update(block)
    extra = {**counter.fields(), **extra}
    return record_of(counter.hexdigest(), counter.size, file_name or os.path.basename(path), model_format, **extra)


def record_of(sha256: str, size: int, file_name: str, model_format: Optional[str] = None, **extra) -> dict:
    """A record from a hash and size measured before (the caller vouches that they are the file's)."""
    record = {SHA256: sha256, SIZE: size, FILE_NAME: file_name}
    if model_format:
        record[FORMAT] = model_format
    record.update(extra)
    return record


def get_record(job_meta: Optional[dict], component: str) -> Optional[dict]:
    """The record stored for ``component`` in a job's meta, or None."""
    if not isinstance(job_meta, dict):
        return None
    records = job_meta.get(COMPONENT_RECORDS_KEY)
    if not isinstance(records, dict):
        return None
    record = records.get(component)
    return record if isinstance(record, dict) else None


def save_record(job_manager, job_id: str, component: str, record: dict, fl_ctx) -> None:
    """Add or replace one component's record in the job meta, keeping the others.

    Called in the server parent process, which owns the job manager. The store's
    update_meta merges top-level keys, so the whole records dict is rewritten.
    """
    job = job_manager.get_job(job_id, fl_ctx)
    meta = job.meta if job else {}
    records = dict(meta.get(COMPONENT_RECORDS_KEY) or {})
    records[component] = dict(record)
    job_manager.update_meta(job_id, {COMPONENT_RECORDS_KEY: records}, fl_ctx)
