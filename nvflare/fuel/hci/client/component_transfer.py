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
"""Admin-client side of ``download_job_component``: one component, verified, as one file.

Upstream's pull_folder cannot carry a component name to the server and unzips whatever
ends in ``.zip``, so this handler (hooked into FileTransferModule's handler map) does the
transfer itself:

* the bytes go to ``<component>.part-<random>`` in the destination folder, hashed while
  they are written (one chunk in memory, requests pipelined);
* the file gets its final name only when size and sha256 match the record the server
  sent ahead of the data; otherwise the temp file is removed and the message says why;
* the final name never replaces an existing file: ``<component>__1``, ``__2``, ... as
  upstream does for download folders; the path is printed and returned;
* never unzipped, whatever the name ends with.
"""

import hashlib
import os
import tempfile
import time

from nvflare.apis.utils.component_names import component_name_problem
from nvflare.apis.utils.component_records import SHA256, SIZE
from nvflare.fuel.f3.streaming.download_service import Consumer, download_object
from nvflare.fuel.hci.client.api_spec import CommandContext
from nvflare.fuel.hci.client.api_status import APIStatus
from nvflare.fuel.hci.client.download_failures import explain_failure
from nvflare.fuel.hci.cmd_arg_utils import join_args
from nvflare.fuel.hci.component_download_defs import COMPONENT_RECORD, PULL_COMPONENT_FQN
from nvflare.fuel.hci.proto import MetaKey, MetaStatusValue, ProtoKey, make_meta

PROGRESS_EVENT = "download_component_progress"
PROGRESS_INTERVAL = 1.0  # seconds between progress lines; shorter downloads print none
MAX_NAME_TRIES = 1000

_MIB = 1024 * 1024


def _mib(n: float) -> str:
    return f"{n / _MIB:.1f} MiB"


def _error(details: str, status=APIStatus.ERROR_RUNTIME) -> dict:
    return {ProtoKey.STATUS: status, ProtoKey.DETAILS: details}


class _VerifyingFileConsumer(Consumer):
    """Writes chunks to an open file and hashes them; never changes the producer's state."""

    # consume() returns the state it was given, so the next request can be in flight
    # while this chunk is written.
    supports_pipelining = True

    def __init__(self, f, expected_size: int, report):
        super().__init__()
        self.file = f
        self.expected_size = expected_size
        self.report = report
        self.digest = hashlib.sha256()
        self.size = 0
        self.error = None
        self.completed = False
        self.started = time.time()
        self.last_report = self.started

    def consume(self, ref_id, state: dict, data) -> dict:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected bytes from the server but got {type(data).__name__}")
        self.file.write(data)
        self.digest.update(data)
        self.size += len(data)
        if self.size > self.expected_size:
            raise ValueError(f"received more than the {self.expected_size} bytes the server recorded")
        now = time.time()
        if now - self.last_report >= PROGRESS_INTERVAL:
            self.last_report = now
            self.report(self.progress_text(now))
        return dict(state or {})

    def progress_text(self, now: float) -> str:
        pct = f" ({100 * self.size // self.expected_size}%)" if self.expected_size else ""
        return f"{_mib(self.size)} of {_mib(self.expected_size)}{pct}, {_mib(self.rate(now))}/s"

    def rate(self, now: float) -> float:
        return self.size / max(now - self.started, 1e-6)

    def download_completed(self, ref_id: str):
        self.completed = True

    def download_failed(self, ref_id, reason: str):
        self.error = reason


def _claim_final_name(tmp_path: str, wanted: str) -> str:
    """Give ``tmp_path`` the name ``wanted`` (or ``wanted__N``) without replacing any file."""
    for i in range(MAX_NAME_TRIES):
        candidate = wanted if i == 0 else f"{wanted}__{i}"
        try:
            os.link(tmp_path, candidate)  # fails if the name exists: no silent overwrite
        except FileExistsError:
            continue
        except OSError:
            # File systems without hard links: an exists-check then rename is the best left.
            if os.path.lexists(candidate):
                continue
            os.rename(tmp_path, candidate)
            return candidate
        os.unlink(tmp_path)
        return candidate
    raise FileExistsError(f"{wanted} and {wanted}__1 .. __{MAX_NAME_TRIES - 1} all exist")


class ComponentPuller:
    """The pull_component handler of one FileTransferModule (uses its download_dir)."""

    def __init__(self, file_transfer_module):
        self.module = file_transfer_module

    def handlers(self) -> dict:
        return {PULL_COMPONENT_FQN: self.pull_component}

    def _destination_dir(self, destination, job_id: str) -> str:
        folder = destination or job_id
        return folder if os.path.isabs(folder) else os.path.join(self.module.download_dir, folder)

    def pull_component(self, args, ctx: CommandContext):
        cmd_entry = ctx.get_command_entry()
        if len(args) not in (3, 4):
            return _error(f"Usage: {cmd_entry.usage}", APIStatus.ERROR_SYNTAX)
        job_id, component = args[1], args[2]
        destination = args[3] if len(args) == 4 else None
        # Same rule as the server, checked before the name is used for any local path.
        problem = component_name_problem(component)
        if problem:
            return _error(problem, APIStatus.ERROR_SYNTAX)

        api = ctx.get_api()
        result = api.server_execute(join_args([cmd_entry.full_command_name(), job_id, component]))
        if result.get(ProtoKey.STATUS) != APIStatus.SUCCESS:
            return result
        meta = result.get(ProtoKey.META) or {}
        if meta.get(MetaKey.STATUS, MetaStatusValue.OK) != MetaStatusValue.OK:
            return result
        files = meta.get(MetaKey.FILES) or []
        record = meta.get(COMPONENT_RECORD)
        if len(files) != 1 or files[0][0] != component or not isinstance(record, dict):
            return _error(f"unexpected reply from the server for {component}: {files}, record {record}")
        return self._receive(api, meta, component, record, self._destination_dir(destination, meta.get(MetaKey.FOLDER_NAME) or job_id))

    def _receive(self, api, meta: dict, component: str, record: dict, dest_dir: str) -> dict:
        job_id = meta.get(MetaKey.FOLDER_NAME)
        expected_size, expected_sha = record.get(SIZE), record.get(SHA256)
        try:
            os.makedirs(dest_dir, exist_ok=True)
            fd, tmp_path = tempfile.mkstemp(prefix=f"{component}.part-", dir=dest_dir)
        except OSError as e:
            return _error(f"cannot write {component} into {dest_dir}: {e}")

        def report(text):
            api.fire_session_event(PROGRESS_EVENT, f"downloading {component}: {text}")

        kept = False
        try:
            with os.fdopen(fd, "wb") as f:
                consumer = _VerifyingFileConsumer(f, expected_size, report)
                download_object(
                    from_fqcn=meta.get(MetaKey.SOURCE_FQCN),
                    ref_id=meta[MetaKey.FILES][0][1],
                    per_request_timeout=api.file_download_progress_timeout,
                    cell=api.cell,
                    consumer=consumer,
                    abort_signal=getattr(api, "session_abort_signal", None),
                )
            elapsed = time.time() - consumer.started
            if consumer.error or not consumer.completed:
                why = explain_failure(consumer.error or "the transfer ended early", api.file_download_progress_timeout)
                return _error(f"download of {component} failed: {why}; no file was kept")
            sha = consumer.digest.hexdigest()
            if consumer.size != expected_size or sha != expected_sha:
                return _error(
                    f"download of {component} failed verification: received {consumer.size} bytes with sha256 "
                    f"{sha}, the server recorded {expected_size} bytes with sha256 {expected_sha}; no file was kept"
                )
            final = _claim_final_name(tmp_path, os.path.join(dest_dir, component))
            kept = True
        except Exception as e:
            return _error(f"download of {component} failed: {type(e).__name__}: {e}; no file was kept")
        finally:
            if not kept and os.path.lexists(tmp_path):
                os.unlink(tmp_path)

        rate = _mib(consumer.size / max(elapsed, 1e-6))
        return {
            ProtoKey.STATUS: APIStatus.SUCCESS,
            ProtoKey.DETAILS: (
                f"downloaded {component} of job {job_id} to {final} "
                f"({consumer.size} bytes in {elapsed:.1f}s, {rate}/s, sha256 verified)"
            ),
            ProtoKey.META: make_meta(MetaStatusValue.OK, extra={MetaKey.LOCATION: final, COMPONENT_RECORD: record}),
        }
