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
  they are written in order: as one HTTPS response on the server's listener when the
  server offers it (component_direct_reader), else - and from wherever that response
  stopped - by ranges, several in flight (component_range_reader);
* the file gets its final name only when size and sha256 match the record the server
  sent ahead of the data and, for a signed model, its provenance verifies against the
  admin kit's root CA (component_provenance; the proof is written beside it); otherwise
  the temp file is removed and the message says why;
* the final name keeps the original file's extension(s) from the record, so the file
  loads with its framework's loader as it is (``MODEL_global_model.weights.h5``; rule in
  component_file_names), and never replaces an existing file: ``__1``, ``__2``, ... go
  before the extension; the path is printed and returned;
* never unzipped, whatever the name ends with.
"""

import os
import tempfile
import time

from nvflare.apis.utils.component_file_names import download_file_name
from nvflare.apis.utils.component_names import component_name_problem
from nvflare.apis.utils.component_records import SHA256, SIZE
from nvflare.fuel.hci.client.api_spec import CommandContext
from nvflare.fuel.hci.client.api_status import APIStatus
from nvflare.fuel.hci.client.component_direct_reader import (
    DirectAborted,
    DirectUnavailable,
    direct_endpoint,
    read_direct,
)
from nvflare.fuel.hci.client.component_provenance import check_received, write_proof
from nvflare.fuel.hci.client.component_range_reader import (
    RANGE_LENGTH,
    RangeRefused,
    RangeRetryable,
    RangeSource,
    read_ranges,
)
from nvflare.fuel.hci.client.download_failures import explain_failure
from nvflare.fuel.hci.cmd_arg_utils import join_args
from nvflare.fuel.hci.component_download_defs import COMPONENT_RECORD, PULL_COMPONENT_FQN
from nvflare.fuel.hci.component_range_defs import DIRECT_ROUTE, MAX_LENGTH, RANGE_TRANSFER, TRANSFER_ID, TRANSFER_SIZE
from nvflare.fuel.hci.proto import MetaKey, MetaStatusValue, ProtoKey, make_meta
from nvflare.fuel.utils.file_digest import Sha256Counter

PROGRESS_EVENT = "download_component_progress"
PROGRESS_INTERVAL = 1.0  # seconds between progress lines; shorter downloads print none
MAX_NAME_TRIES = 1000

_MIB = 1024 * 1024


# Where a component lands by default, under the admin's transfer folder.
COMPONENTS_FOLDER = "components"


def _mib(n: float) -> str:
    return f"{n / _MIB:.1f} MiB"


def _error(details: str, status=APIStatus.ERROR_RUNTIME) -> dict:
    return {ProtoKey.STATUS: status, ProtoKey.DETAILS: details}


class _VerifyingWriter:
    """Writes the ranges to an open file in order and hashes them on the way."""

    def __init__(self, f, expected_size: int, report):
        self.file = f
        self.expected_size = expected_size
        self.report = report
        self.received = Sha256Counter()
        self.started = time.time()
        self.last_report = self.started
        self.direct_problem = None  # why the direct response did not deliver everything

    def __call__(self, data: bytes):
        self.file.write(data)
        self.received.update(data)
        now = time.time()
        if now - self.last_report >= PROGRESS_INTERVAL:
            self.last_report = now
            self.report(self.progress_text(now))

    @property
    def size(self) -> int:
        return self.received.size

    def progress_text(self, now: float) -> str:
        pct = f" ({100 * self.size // self.expected_size}%)" if self.expected_size else ""
        return f"{_mib(self.size)} of {_mib(self.expected_size)}{pct}, {_mib(self.rate(now))}/s"

    def rate(self, now: float) -> float:
        return self.size / max(now - self.started, 1e-6)


def _claim_final_name(tmp_path: str, dest_dir: str, component: str, record: dict) -> str:
    """Give ``tmp_path`` the component's download name (component_file_names) without replacing any file."""
    for i in range(MAX_NAME_TRIES):
        candidate = os.path.join(dest_dir, download_file_name(component, record, i))
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
    first, last = download_file_name(component, record), download_file_name(component, record, MAX_NAME_TRIES - 1)
    raise FileExistsError(f"{first} and the names up to {last} all exist")


class ComponentPuller:
    """The pull_component handler of one FileTransferModule (uses its download_dir)."""

    def __init__(self, file_transfer_module):
        self.module = file_transfer_module

    def handlers(self) -> dict:
        return {PULL_COMPONENT_FQN: self.pull_component}

    @staticmethod
    def _read_direct(api, transfer: dict, size: int, writer: _VerifyingWriter, abort_signal):
        """Take as much as the direct response delivers; the ranges fetch the rest."""
        route = transfer.get(DIRECT_ROUTE)
        endpoint = direct_endpoint(api.cell) if route else None
        if not endpoint or size <= 0:
            return
        try:
            read_direct(
                endpoint, route, transfer[TRANSFER_ID], size, writer, api.file_download_progress_timeout, abort_signal
            )
        except DirectUnavailable as e:
            writer.direct_problem = str(e)
        except DirectAborted:
            raise RangeRefused("aborted") from None

    def _destination_dir(self, destination, job_id: str) -> str:
        # Default: transfer/components/<job_id>/, never transfer/<job_id>/, which is where
        # download_job puts the workspace (it would move to <job_id>__1 if that existed).
        folder = destination or os.path.join(COMPONENTS_FOLDER, job_id)
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
        record = meta.get(COMPONENT_RECORD)
        transfer = meta.get(RANGE_TRANSFER)
        if not isinstance(record, dict) or not isinstance(transfer, dict):
            return _error(f"unexpected reply from the server for {component}: record {record}, transfer {transfer}")
        dest_dir = self._destination_dir(destination, meta.get(MetaKey.FOLDER_NAME) or job_id)
        return self._receive(api, meta, component, record, transfer, dest_dir)

    def _receive(self, api, meta: dict, component: str, record: dict, transfer: dict, dest_dir: str) -> dict:
        job_id = meta.get(MetaKey.FOLDER_NAME)
        expected_size, expected_sha = record.get(SIZE), record.get(SHA256)
        source = RangeSource(
            api.cell, transfer, api.file_download_progress_timeout, getattr(api, "session_abort_signal", None)
        )
        if transfer[TRANSFER_SIZE] != expected_size:
            source.end("size mismatch")
            return _error(
                f"download of {component} failed verification: the server holds {transfer[TRANSFER_SIZE]} bytes "
                f"for it but recorded {expected_size}; no file was kept"
            )
        try:
            os.makedirs(dest_dir, exist_ok=True)
            fd, tmp_path = tempfile.mkstemp(prefix=f"{component}.part-", dir=dest_dir)
        except OSError as e:
            source.end("cannot write")
            return _error(f"cannot write {component} into {dest_dir}: {e}")

        def report(text):
            api.fire_session_event(PROGRESS_EVENT, f"downloading {component}: {text}")

        kept = False
        status = "failed"
        try:
            with os.fdopen(fd, "wb", buffering=0) as f:
                writer = _VerifyingWriter(f, expected_size, report)
                self._read_direct(api, transfer, expected_size, writer, source.abort_signal)
                read_ranges(
                    source.fetch,
                    expected_size,
                    writer,
                    range_length=min(RANGE_LENGTH, transfer[MAX_LENGTH]),
                    abort_signal=source.abort_signal,
                    start=writer.size,
                )
            status = "ok"
            elapsed = time.time() - writer.started
            sha = writer.received.hexdigest()
            if sha != expected_sha:
                return _error(
                    f"download of {component} failed verification: received {writer.size} bytes with sha256 "
                    f"{sha}, the server recorded {expected_size} bytes with sha256 {expected_sha}; no file was kept"
                )
            refusal, signed = check_received(api, component, job_id, record, sha, writer.size)  # component_provenance
            if refusal:
                return _error(f"download of {component} refused: {refusal}; no file was kept")
            final = _claim_final_name(tmp_path, dest_dir, component, record)
            kept = True
            try:
                proof = write_proof(final, record)
            except OSError as e:
                os.unlink(final)
                why = f"could not write its provenance file ({e})"
                return _error(f"download of {component} failed: {why}; no file was kept")
        except (RangeRetryable, RangeRefused) as e:
            why = explain_failure(str(e), api.file_download_progress_timeout)
            return _error(f"download of {component} failed: {why}; no file was kept")
        except OSError as e:
            why = f"could not write the file at the destination ({type(e).__name__}: {e})"
            return _error(f"download of {component} failed: {why}; no file was kept")
        except Exception as e:
            return _error(f"download of {component} failed: {type(e).__name__}: {e}; no file was kept")
        finally:
            source.end(status)
            if not kept and os.path.lexists(tmp_path):
                os.unlink(tmp_path)

        rate = _mib(writer.size / max(elapsed, 1e-6))
        if writer.direct_problem:
            api.debug(f"direct transfer of {component} fell back to ranges: {writer.direct_problem}")
        return {
            ProtoKey.STATUS: APIStatus.SUCCESS,
            ProtoKey.DETAILS: (
                f"downloaded {component} of job {job_id} to {final} "
                f"({writer.size} bytes in {elapsed:.1f}s, {rate}/s, sha256 verified)\n{signed}"
                + (f"; proof in {proof}" if proof else "")
            ),
            ProtoKey.META: make_meta(MetaStatusValue.OK, extra={MetaKey.LOCATION: final, COMPONENT_RECORD: record}),
        }
