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
transfer itself. Console, FLARE API and ``nvflare job download --component`` all run it:

* if the destination already holds exactly the recorded bytes under one of the names
  the download could use, nothing is transferred: it says so and returns that path
  (component_landing);
* before anything is written, the destination must have room for what is still to come
  (component_landing), or the download stops with both numbers;
* the bytes go to ``<final name>.part`` in the destination folder: as one HTTPS response
  on the server's listener when the server offers it (component_direct_reader), else -
  and from wherever that response stopped - by ranges, several in flight
  (component_range_reader). They are written in this thread and hashed in another
  (background_hash), so the verified download keeps the pace of an unverified one;
* an interrupted download keeps its partial file, and the same command resumes from its
  verified prefix (component_partial);
* the file gets its final name only when size and sha256 match the record the server
  sent ahead of the data and, for a signed model, its provenance verifies against the
  admin kit's root CA (component_provenance; the proof is written beside it); otherwise
  the partial file is removed and the message says why;
* the final name keeps the original file's extension(s) from the record, so the file
  loads with its framework's loader as it is (``MODEL_global_model.weights.h5``; rule in
  component_file_names), and never replaces an existing file: a name holding other bytes
  is kept and the download takes ``__1``, ``__2``, ... (before the extension); the path
  is printed and returned;
* never unzipped, whatever the name ends with.
"""

import os
import time

from nvflare.apis.utils.component_block_hashes import recorded_blocks
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
from nvflare.fuel.hci.client.component_landing import NotEnoughSpace, already_downloaded, check_space, claim_final_name
from nvflare.fuel.hci.client.component_partial import PartialBusy, PartialFile, partial_path, remove_stale_partials
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
from nvflare.fuel.hci.job_component_defs import (
    COMPONENT_RECORD,
    DIRECT_ROUTE,
    MAX_LENGTH,
    PULL_COMPONENT_FQN,
    RANGE_TRANSFER,
    TRANSFER_ID,
    TRANSFER_SIZE,
)
from nvflare.fuel.hci.proto import MetaKey, MetaStatusValue, ProtoKey, make_meta
from nvflare.fuel.utils.background_hash import BackgroundHash

PROGRESS_EVENT = "download_component_progress"
PROGRESS_INTERVAL = 1.0  # seconds between progress lines; shorter downloads print none

# Reply meta keys besides LOCATION and COMPONENT_RECORD (the FLARE API and tests read them).
RESUMED_FROM = "resumed_from"  # bytes taken from the partial file instead of the server
TRANSFERRED = "transferred"  # bytes that came from the server in this download
ALREADY_DOWNLOADED = "already_downloaded"  # True: the file was there, nothing was transferred

_MIB = 1024 * 1024


# Where a component lands by default, under the admin's transfer folder.
COMPONENTS_FOLDER = "components"


def _mib(n: float) -> str:
    return f"{n / _MIB:.1f} MiB"


def _error(details: str, status=APIStatus.ERROR_RUNTIME) -> dict:
    return {ProtoKey.STATUS: status, ProtoKey.DETAILS: details}


class _Failed(Exception):
    """Ends the download with this message (the partial file's fate is decided before)."""


class _VerifyingWriter:
    """Writes the bytes to the partial file in order; a thread of its own hashes them."""

    def __init__(self, f, expected_size: int, report, counter, start: int):
        self.file = f
        self.expected_size = expected_size
        self.report = report
        self.hash = BackgroundHash(counter, name="component_sha256")
        self.start = start  # bytes the partial file held (verified) before this download
        self.size = start
        self.started = time.time()
        self.last_report = self.started
        self.direct_problem = None  # why the direct response did not deliver everything

    def __call__(self, data, release=None):
        try:
            view = memoryview(data)
            while len(view):
                view = view[self.file.write(view) :]
        except BaseException:
            if release:
                release()
            raise
        self.size += len(data)
        self.hash.update(data, release)  # releases the buffer once hashed
        now = time.time()
        if now - self.last_report >= PROGRESS_INTERVAL:
            self.last_report = now
            self.report(self.progress_text(now))

    def finish(self):
        """(sha256, size) of the whole file: the verified prefix and everything written since."""
        return self.hash.finish().result()

    def progress_text(self, now: float) -> str:
        pct = f" ({100 * self.size // self.expected_size}%)" if self.expected_size else ""
        return f"{_mib(self.size)} of {_mib(self.expected_size)}{pct}, {_mib(self.rate(now))}/s"

    def rate(self, now: float) -> float:
        return (self.size - self.start) / max(now - self.started, 1e-6)


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
        if not endpoint or size <= writer.size:
            return
        try:
            read_direct(
                endpoint,
                route,
                transfer[TRANSFER_ID],
                size,
                writer,
                api.file_download_progress_timeout,
                abort_signal,
                start=writer.size,
                sink_releases=True,
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
        return _Download(api, meta.get(MetaKey.FOLDER_NAME), component, record, transfer, dest_dir).run(self)


class _Download:
    """One run of the command, from the server's reply to the file under its final name."""

    def __init__(self, api, job_id: str, component: str, record: dict, transfer: dict, dest_dir: str):
        self.api, self.job_id, self.component = api, job_id, component
        self.record, self.transfer, self.dest_dir = record, transfer, dest_dir
        self.expected_size, self.expected_sha = record.get(SIZE), record.get(SHA256)
        self.source = RangeSource(
            api.cell, transfer, api.file_download_progress_timeout, getattr(api, "session_abort_signal", None)
        )
        self.status = "failed"  # what the server is told when the transfer ends

    def say(self, text: str):
        """A line for the console now (a progress event), before the result."""
        self.api.fire_session_event(PROGRESS_EVENT, f"downloading {self.component}: {text}")

    def run(self, puller: ComponentPuller) -> dict:
        component = self.component
        try:
            if self.transfer[TRANSFER_SIZE] != self.expected_size:
                return _error(
                    f"download of {component} failed verification: the server holds {self.transfer[TRANSFER_SIZE]} "
                    f"bytes for it but recorded {self.expected_size}; no file was kept"
                )
            found, taken = already_downloaded(self.dest_dir, component, self.record)
            if found:
                return self._already_there(found)
            for path in remove_stale_partials(self.dest_dir, keep=partial_path(self.dest_dir, component, self.record)):
                self.say(f"removed the stale partial file {path} (not written for 7 days)")
            return self._transfer(puller, taken)
        except _Failed as e:
            return _error(str(e))
        finally:
            self.source.end(self.status)

    def _already_there(self, path: str) -> dict:
        self.status = "ok: already downloaded"
        refusal, signed = check_received(self.api, self.component, self.job_id, self.record, *self._expected())
        if refusal:
            raise _Failed(f"download of {self.component} refused: {refusal}; {path} was left as it is")
        try:
            proof = write_proof(path, self.record)
        except OSError as e:
            raise _Failed(f"download of {self.component} failed: could not write its provenance file ({e})")
        self._drop_own_partial()
        details = (
            f"{self.component} of job {self.job_id} is already downloaded: {path} holds the recorded "
            f"{self.expected_size} bytes (sha256 verified); nothing was transferred\n{signed}"
        )
        return self._success(path, details + (f"; proof in {proof}" if proof else ""), 0, 0, already=True)

    def _drop_own_partial(self):
        """A partial file of this download is of no use once the file is there (unless a download holds it)."""
        path = partial_path(self.dest_dir, self.component, self.record)
        if os.path.isfile(path) and not os.path.islink(path):
            try:
                PartialFile(path).remove()
                self.say(f"removed {path}: the file it was the beginning of is there")
            except (PartialBusy, OSError):
                pass

    def _expected(self):
        return self.expected_sha, self.expected_size

    def _open_partial(self, path: str):
        """(the partial file, or None if there is none yet; bytes kept; their hash counter)."""
        if not os.path.lexists(path):
            return None, 0, None
        try:
            partial = PartialFile(path)
        except PartialBusy as e:
            raise _Failed(f"download of {self.component} refused: {e}")
        except OSError as e:
            raise _Failed(f"cannot write {self.component} into {self.dest_dir}: {e}")
        try:
            kept, counter, note = partial.resume_point(self.record)
        except OSError as e:
            partial.close()
            raise _Failed(f"cannot read the partial file {path}: {e}")
        if note:
            self.say(note)
        return partial, kept, counter

    def _transfer(self, puller: ComponentPuller, taken) -> dict:
        component, size = self.component, self.expected_size
        part_path = partial_path(self.dest_dir, component, self.record)
        partial, kept, counter = self._open_partial(part_path)
        try:
            try:
                check_space(self.dest_dir, component, size - kept, size, kept)
            except NotEnoughSpace as e:
                raise _Failed(f"download of {component} refused: {e}; nothing was written")
            if partial is None:
                try:
                    os.makedirs(self.dest_dir, exist_ok=True)
                    partial = PartialFile(part_path)
                except PartialBusy as e:
                    raise _Failed(f"download of {component} refused: {e}")
                except OSError as e:
                    raise _Failed(f"cannot write {component} into {self.dest_dir}: {e}")
                kept, counter, _ = partial.resume_point(self.record)  # created empty just now: 0
            return self._fetch_and_verify(puller, partial, kept, counter, taken)
        finally:
            if partial is not None:
                partial.close()

    def _fetch_and_verify(self, puller, partial: PartialFile, kept: int, counter, taken) -> dict:
        api, component, size = self.api, self.component, self.expected_size

        def report(text):
            api.fire_session_event(PROGRESS_EVENT, f"downloading {component}: {text}")

        os.lseek(partial.fd, kept, os.SEEK_SET)
        f = os.fdopen(os.dup(partial.fd), "wb", buffering=0)
        writer = _VerifyingWriter(f, size, report, counter, kept)
        try:
            puller._read_direct(api, self.transfer, size, writer, self.source.abort_signal)
            read_ranges(
                self.source.fetch,
                size,
                writer,
                range_length=min(RANGE_LENGTH, self.transfer[MAX_LENGTH]),
                abort_signal=self.source.abort_signal,
                start=writer.size,
            )
        except BaseException as e:
            writer.hash.stop()
            f.close()
            if isinstance(e, (RangeRetryable, RangeRefused)):
                self._interrupted(partial, explain_failure(str(e), api.file_download_progress_timeout), writer.size)
            if isinstance(e, OSError):
                why = f"could not write the file at the destination ({type(e).__name__}: {e})"
                self._interrupted(partial, why, writer.size)
            if isinstance(e, Exception):
                self._interrupted(partial, f"{type(e).__name__}: {e}", writer.size)
            raise  # KeyboardInterrupt and the like: the partial file stays for the next attempt
        f.close()
        self.status = "ok"
        sha, got = writer.finish()
        elapsed = time.time() - writer.started
        if writer.direct_problem:
            api.debug(f"direct transfer of {component} fell back to ranges: {writer.direct_problem}")
        return self._verify_and_name(partial, sha, got, kept, elapsed, taken)

    def _interrupted(self, partial: PartialFile, why: str, written: int):
        """End an interrupted download: keep what can be resumed, say how."""
        blocks = recorded_blocks(self.record)
        if blocks is None or written < blocks[0]:
            partial.remove()  # nothing of it could be verified next time
            raise _Failed(f"download of {self.component} failed: {why}; no file was kept")
        raise _Failed(
            f"download of {self.component} failed: {why}; the {written} bytes received so far are kept in "
            f"{partial.path}: run the same command again to resume"
        )

    def _verify_and_name(self, partial: PartialFile, sha: str, got: int, kept: int, elapsed: float, taken) -> dict:
        component = self.component
        if (sha, got) != self._expected():
            partial.remove()
            raise _Failed(
                f"download of {component} failed verification: received {got} bytes with sha256 "
                f"{sha}, the server recorded {self.expected_size} bytes with sha256 {self.expected_sha}; no file was kept"
            )
        refusal, signed = check_received(self.api, component, self.job_id, self.record, sha, got)
        if refusal:
            partial.remove()
            raise _Failed(f"download of {component} refused: {refusal}; no file was kept")
        try:
            final = claim_final_name(partial.path, self.dest_dir, component, self.record)
        except OSError as e:
            partial.remove()
            raise _Failed(f"download of {component} failed: could not name the file ({e}); no file was kept")
        try:
            proof = write_proof(final, self.record)
        except OSError as e:
            os.unlink(final)
            raise _Failed(
                f"download of {component} failed: could not write its provenance file ({e}); no file was kept"
            )
        moved = got - kept
        rate = _mib(moved / max(elapsed, 1e-6))
        lines = [
            f"downloaded {component} of job {self.job_id} to {final} "
            f"({got} bytes in {elapsed:.1f}s, {rate}/s, sha256 verified)"
        ]
        if kept:
            lines.append(f"resumed: {kept} bytes were already in the partial file (verified), {moved} transferred")
        if taken and final != taken:
            lines.append(f"{taken} holds other bytes (another version of {component}?): kept as it is")
        lines.append(signed + (f"; proof in {proof}" if proof else ""))
        return self._success(final, "\n".join(lines), kept, moved)

    def _success(self, path: str, details: str, kept: int, moved: int, already: bool = False) -> dict:
        extra = {
            MetaKey.LOCATION: path,
            COMPONENT_RECORD: self.record,
            RESUMED_FROM: kept,
            TRANSFERRED: moved,
            ALREADY_DOWNLOADED: already,
        }
        return {
            ProtoKey.STATUS: APIStatus.SUCCESS,
            ProtoKey.DETAILS: details,
            ProtoKey.META: make_meta(MetaStatusValue.OK, extra=extra),
        }
