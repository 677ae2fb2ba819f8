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
"""Store each job's published models in the job store, before the job shows as finished.

Lives in the server parent process (SP), declared in the server's ``local/resources.json``
(new kits and POC systems have it; kits from ``nvflare deploy prepare`` in the parent-only
``local/job_model_store__p_resources.json``). It adds the ModelPublisher to every job at
launch whose server process has the fork, and stores what that publisher sends, as
``MODEL_<name>`` components with a record (sha256, size, original file name, format) in
the job meta so downloaders can verify the bytes.

Only a job's own server process may create MODEL_ components. The parent's
authentication filter has already checked, for every message, that the signed identity
headers are genuine; this store then requires that identity to be the job process's
(``server_job`` with the job id as token, which only the parent issues at launch) and the
sending cell to be ``server.<job id>``. Anything else - a client site's job cell, another
job's server process - is refused and logged.

Same file (the default process launcher; the docker launcher, which bind-mounts the run
folder): the job process names a file in its run folder, and the store hard-links it (or
copies it when a link is impossible), so no bytes cross the network stack. Otherwise
(the k8s launcher's emptyDir) the store pulls the file from the job process and checks it
against the sender's sha256. Jobs whose server process runs from its own image get the
publisher only when that image is declared to have the fork (model_publisher_injection).

The store applies the publishing rule itself (run_folder_files), independently of the job
process: the path, relative to the job's run folder as this process sees it, must lead to
a regular file inside that folder, checked on the descriptor the store opened; the link
must be the same (device, inode) as that descriptor, and a copy reads the descriptor. A
path outside is refused and audited, never answered "not visible" (which would make the
job stream it): in container set-ups the server parent may read files the job cannot.

Components a job configures to open files outside the job are refused in every job
process by persistor_path_guard (hooked into upstream's component build), not here.

The record's sha256 on the same-host path: the job process hashes its model files while
the job trains (model_prehash) and sends the hash with the request when the file is still
the one it hashed. The store uses it, instead of reading the whole file again, only when
it hard-linked the very inode the request names, after checking that the file's identity
(device, inode, size, mtime, ctime) here equals the sender's. The sender has already been
authenticated as the job's own server process (_sender_job), which wrote the file and
could have written any bytes into it: trusting its sha256 for that same inode is the same
trust as trusting the file it names. A copied file, a file that changed, or a request
without a hash is hashed here, as always (with the block hashes of component_block_hashes
in the same pass; a job process's pre-hash brings them along).

A copy (another file system) or a stream needs room in the staging folder: without the
model's size plus 64 MiB free there, nothing is written and the job's log says why, with
both numbers (a link needs none).
"""

import errno
import os
import re
import shutil
import threading
import uuid

from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import FLContextKey, JobConstants, ProcessType, SystemComponents
from nvflare.apis.fl_context import FLContext
from nvflare.apis.job_def import JobMetaKey
from nvflare.apis.storage import DataTypes
from nvflare.apis.utils.component_block_hashes import BLOCK_SHA256, BLOCK_SIZE, senders_block_fields
from nvflare.apis.utils.component_names import check_component_name, shown_name
from nvflare.apis.utils.component_records import SHA256, SIZE, make_record, record_of
from nvflare.apis.utils.model_record_info import MODEL_INFO, clean_model_info
from nvflare.app_common.model_publishing.model_publish_defs import (
    CHANNEL,
    KINDS,
    MODE_LOCAL,
    MODE_STREAM,
    TOPIC,
    Key,
    Status,
)
from nvflare.app_common.model_publishing.model_publish_settings import (
    DROP_FROM_WORKSPACE,
    ENABLED,
    TRANSFER,
    PublishSettings,
    load_publish_settings,
)
from nvflare.app_common.model_publishing.model_publisher_injection import (
    PUBLISHER_PATH,
    Outcome,
    inject_publisher,
    job_launchers,
    own_image_launchers,
    place_publisher,
    store_read_by_job_processes,
)
from nvflare.app_common.model_publishing.model_signer import announce, hashes_itself, save_signed_record
from nvflare.app_common.model_publishing.run_folder_files import RefusedFile, check_in_run_folder, open_in_run_folder
from nvflare.app_common.path_guard.persistor_path_guard import READ_ALLOWED_DIRS, load_allowed_dirs
from nvflare.fuel.f3.cellnet.defs import MessageHeaderKey, ReturnCode
from nvflare.fuel.f3.cellnet.fqcn import FQCN
from nvflare.fuel.f3.cellnet.utils import make_reply
from nvflare.fuel.sec.audit import AuditService
from nvflare.private.defs import AUTH_CLIENT_NAME_FOR_SJ, CellMessageHeaderKeys
from nvflare.security.logging import secure_format_exception
from nvflare.widgets.widget import Widget

STAGING_DIR = ".model_store_staging"
_CHUNK_TIMEOUT = 60.0
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

# who measured a record's sha256 (record field "hashed")
HASHED_BY_JOB = "job"
HASHED_BY_STORE = "store"


class _Refused(Exception):
    pass


class _NotVisible(Exception):
    pass


class _NoSpace(Exception):
    pass


# what a staged copy needs besides the model's bytes (as the backfill keeps: model_backfill)
STAGING_MARGIN = 64 << 20


def _check_staging_space(staging: str, size, job_id: str, kind: str) -> None:
    """Raise _NoSpace, naming both numbers, unless ``staging`` can take a ``size``-byte copy."""
    free = shutil.disk_usage(staging).free
    if isinstance(size, int) and free < size + STAGING_MARGIN:
        raise _NoSpace(
            f"not enough free disk space to store the {kind} model of job {job_id}: it needs {size + STAGING_MARGIN} "
            f"bytes ({size} bytes plus a margin of {STAGING_MARGIN}) in {staging}, and {free} bytes are free"
        )


def _volume_full(e: OSError, folder: str, job_id: str, kind: str) -> Exception:
    """``e`` as a _NoSpace naming ``folder`` if it is a full volume (the errno text names no folder), else ``e``."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return _NoSpace(f"no space left in {folder} to store the {kind} model of job {job_id} ({e.strerror})")
    return e


class JobModelStore(Widget):
    """Server-parent half of model publishing. Settings: model_publish_settings (resources.json keys)."""

    def __init__(self):
        super().__init__()
        self.settings = None  # read at SYSTEM_START, once ConfigService has the server's config
        self._engine = None
        self._cell = None
        self._store_lock = threading.Lock()
        self.register_event_handler(EventType.SYSTEM_START, self._on_system_start)
        self.register_event_handler(EventType.BEFORE_JOB_LAUNCH, self._on_before_job_launch)

    # -- server parent set-up ----------------------------------------------------------
    def _on_system_start(self, event_type: str, fl_ctx: FLContext):
        if fl_ctx.get_process_type() == ProcessType.SERVER_JOB:
            return  # resources.json components are built in job processes too
        engine = fl_ctx.get_engine()
        cell = engine.get_cell() if engine else None
        if cell is None or cell is self._cell:
            return
        try:
            self.settings = load_publish_settings()
        except ValueError as e:
            self.settings = PublishSettings(enabled=False)
            self.log_error(fl_ctx, f"Model publishing is off: {e}")
        try:
            allowed = load_allowed_dirs()
            self.log_info(
                fl_ctx,
                f"Job components may read files from ({READ_ALLOWED_DIRS}): "
                f"{', '.join(allowed) or 'their run folder only'}",
            )
        except ValueError as e:
            self.log_error(fl_ctx, f"{e}; job components may read only inside their run folder")
        cell.register_request_cb(channel=CHANNEL, topic=TOPIC, cb=self._handle_request)
        self._engine, self._cell = engine, cell
        self._warn_if_job_images_must_build_the_store(fl_ctx, engine)
        signing = announce(engine, fl_ctx)  # model_signing_key: which key signs, and why
        (self.log_warning if signing.warn else self.log_info)(fl_ctx, signing.message)
        s = self.settings
        self.log_info(
            fl_ctx,
            f"Job model store ready: {'publishes' if s.enabled else 'publishing disabled;'} "
            f"{s.component_for('global')} and {s.component_for('best')} (transfer {s.transfer}, "
            f"drop from workspace {s.drop_from_workspace}, job images have the fork {s.job_images_have_fork})",
        )

    def _on_before_job_launch(self, event_type: str, fl_ctx: FLContext):
        self._on_system_start(event_type, fl_ctx)
        job_meta = fl_ctx.get_prop(FLContextKey.JOB_META) or {}
        job_id = job_meta.get(JobMetaKey.JOB_ID)
        if not job_id or not (self.settings and self.settings.enabled):
            return
        try:
            placement = place_publisher(job_launchers(fl_ctx), job_meta, self.settings.job_images_have_fork)
            if not placement.has_fork:
                self.log_info(fl_ctx, f"Job {job_id}: model publisher not added: {placement.reason}")
                return
            if not self._publisher_allowed(fl_ctx):
                self.log_error(
                    fl_ctx,
                    f"Job {job_id}: model publisher not added: this server's class_allow_list does not allow "
                    f'it. Add "{PUBLISHER_PATH}" to class_allow_list in local/resources.json',
                )
                return
            workspace = fl_ctx.get_prop(FLContextKey.WORKSPACE_OBJECT) or fl_ctx.get_engine().get_workspace()
            config_path = os.path.join(workspace.get_app_config_dir(job_id), JobConstants.SERVER_JOB_CONFIG)
            outcome = inject_publisher(config_path)
            if outcome == Outcome.INJECTED:
                self.log_info(fl_ctx, f"Added the model publisher to job {job_id} ({placement.reason})")
            elif outcome == Outcome.NO_JSON_CONFIG:
                self.log_warning(
                    fl_ctx, f"Job {job_id}: model publisher not added: {config_path} is missing (non-JSON config?)"
                )
            else:
                self.log_debug(fl_ctx, f"Job {job_id}: model publisher {outcome}")
        except Exception as e:
            self.log_error(fl_ctx, f"Job {job_id}: could not add the model publisher: {secure_format_exception(e)}")

    def _warn_if_job_images_must_build_the_store(self, fl_ctx: FLContext, engine):
        try:
            own = own_image_launchers(job_launchers(fl_ctx))
            files = store_read_by_job_processes(
                engine.get_workspace(), f"{type(self).__module__}.{type(self).__name__}"
            )
        except Exception as e:
            self.log_debug(
                fl_ctx, f"could not check where the job model store is declared: {secure_format_exception(e)}"
            )
            return
        if own and files:
            self.log_warning(
                fl_ctx,
                f"The job model store is declared in {', '.join(files)}, which each job's server process reads "
                f"too; with {', '.join(own)} that process runs from the job's own image, and an image without the "
                f"nvflare model fork cannot build it (the job fails). Move the job_model_store component to "
                f"local/job_model_store__p_resources.json (read by the server parent only), as "
                f"`nvflare deploy prepare` does",
            )

    @staticmethod
    def _publisher_allowed(fl_ctx: FLContext) -> bool:
        from nvflare.app_common.widgets.component_path_authorizer import ComponentPathAuthorizer

        try:
            ComponentPathAuthorizer().authorize_component_config({"path": PUBLISHER_PATH}, fl_ctx=fl_ctx)
            return True
        except Exception:
            return False

    # -- receiving ---------------------------------------------------------------------
    def _handle_request(self, request):
        origin = request.get_header(MessageHeaderKey.ORIGIN, "")
        with self._engine.new_context() as fl_ctx:
            try:
                body = self._process(request, origin, fl_ctx)
            except _Refused as e:
                self.log_error(fl_ctx, f"Refused to store a model: {e}")
                self._audit_refusal(request, origin, e)
                body = {Key.STATUS: Status.REFUSED, Key.MESSAGE: str(e)}
            except _NotVisible as e:
                self.log_debug(fl_ctx, f"Model from {origin} must be streamed: {e}")
                body = {Key.STATUS: Status.NOT_VISIBLE, Key.MESSAGE: str(e)}
            except _NoSpace as e:
                self.log_error(fl_ctx, f"Did not store a model: {e}")
                body = {Key.STATUS: Status.ERROR, Key.MESSAGE: str(e)}
            except Exception as e:
                msg = f"job model store failed: {secure_format_exception(e)}"
                self.log_exception(fl_ctx, f"Model from {origin}: {msg}")
                body = {Key.STATUS: Status.ERROR, Key.MESSAGE: msg}
        return make_reply(ReturnCode.OK, body=body)

    @staticmethod
    def _audit_refusal(request, origin: str, refusal: Exception):
        # Refused admin commands are audited (audited_authz); refused publishers are too.
        AuditService.add_event(
            user=request.get_header(CellMessageHeaderKeys.CLIENT_NAME, "") or "?",
            action=f"{TOPIC} from {origin}"[:100],
            msg=f" REFUSED: {refusal}",
        )

    def _process(self, request, origin: str, fl_ctx: FLContext) -> dict:
        job_id = self._sender_job(request, origin)
        payload = request.payload
        if not self.settings.enabled:
            return {
                Key.STATUS: Status.DISABLED,
                Key.MESSAGE: f"model publishing is disabled on this server ({ENABLED})",
            }
        if not isinstance(payload, dict) or payload.get(Key.KIND) not in KINDS:
            raise _Refused(f"job {job_id}: malformed publish request")
        kind = payload[Key.KIND]
        file_name = os.path.basename(str(payload.get(Key.FILE_NAME) or "")) or "model"
        model_format = str(payload.get(Key.FORMAT) or "")
        component = check_component_name(self.settings.component_for(kind))

        job_manager = self._engine.get_component(SystemComponents.JOB_MANAGER)
        if job_manager is None or job_manager.get_job(job_id, fl_ctx) is None:
            raise _Refused(f"job {job_id} is not in the job store")

        staging = os.path.join(self._engine.get_workspace().get_root_dir(), STAGING_DIR)
        os.makedirs(staging, exist_ok=True)
        mode = payload.get(Key.MODE)
        senders_hash = None
        if mode == MODE_LOCAL:
            staged, how, same_inode = self._stage_local(job_id, payload, staging)
            # a strong signature covers only what the store hashed itself (model_signer)
            senders_hash = _senders_hash(payload) if same_inode and not hashes_itself(self._engine) else None
        elif mode == MODE_STREAM:
            _check_staging_space(staging, payload.get(Key.SIZE), job_id, kind)
            staged, how = self._stage_stream(origin, payload, staging), "stream"
        else:
            raise _Refused(f"job {job_id}: unknown transfer mode {shown_name(mode)}")
        try:
            extra = {"kind": kind, "transfer": how, "hashed": HASHED_BY_JOB if senders_hash else HASHED_BY_STORE}
            extra.update(clean_model_info(payload.get(MODEL_INFO)))  # model_record_info: round, metric
            if senders_hash:
                blocks = payload.get(Key.BLOCKS) if isinstance(payload.get(Key.BLOCKS), dict) else {}
                extra.update(senders_block_fields(senders_hash[1], blocks.get(BLOCK_SIZE), blocks.get(BLOCK_SHA256)))
                record = record_of(*senders_hash, file_name, model_format, **extra)
            else:
                record = make_record(staged, file_name=file_name, model_format=model_format, **extra)
            if mode == MODE_STREAM and (record[SHA256], record[SIZE]) != (
                payload.get(Key.SHA256),
                payload.get(Key.SIZE),
            ):
                raise _Refused(f"job {job_id}: the received {kind} model does not match the sender's sha256/size")
            name = component[len(DataTypes.MODEL.value) + 1 :]
            with self._store_lock:
                try:
                    job_manager.set_client_data(job_id, staged, name, DataTypes.MODEL.value, fl_ctx)
                except OSError as e:
                    raise _volume_full(e, os.path.dirname(e.filename or "") or "the job store", job_id, kind)
                record = save_signed_record(self._engine, job_manager, job_id, component, record, fl_ctx)
        finally:
            if os.path.exists(staged):
                os.remove(staged)
        self.log_info(
            fl_ctx,
            f"Stored {kind} model {file_name!r} of job {job_id} as {component} "
            f"({record[SIZE]} bytes, sha256 {record[SHA256][:12]} "
            f"{'from the job process' if senders_hash else 'computed by the store'}, {how})",
        )
        return {
            Key.STATUS: Status.STORED,
            Key.COMPONENT: component,
            Key.DROP_SOURCE: self.settings.drop_from_workspace,
            Key.MESSAGE: f"stored as {component}"
            + (f" ({DROP_FROM_WORKSPACE})" if self.settings.drop_from_workspace else ""),
        }

    @staticmethod
    def _sender_job(request, origin: str) -> str:
        """The job whose own server process sent ``request``; _Refused for anyone else."""
        client = request.get_header(CellMessageHeaderKeys.CLIENT_NAME, "")
        token = request.get_header(CellMessageHeaderKeys.TOKEN, "")
        path = FQCN.split(origin) if origin else []
        if len(path) == 2 and path[0] == FQCN.ROOT_SERVER and client == AUTH_CLIENT_NAME_FOR_SJ and token == path[1]:
            return path[1]
        raise _Refused(
            f"request from cell {shown_name(origin)} (authenticated as {shown_name(client or '')}): "
            f"only a job's own server process may publish models into its job store"
        )

    def _stage_local(self, job_id: str, payload: dict, staging: str):
        """Link (or copy) the file the job names: only a regular file inside the job's run folder.

        The same rule as the job process's, applied here independently: a path outside the
        run folder is refused (never answered "not visible", which would invite the job to
        stream it); only a path inside it that this process cannot see (container launchers)
        or that is not the sender's file here is "not visible".
        """
        path = payload.get(Key.PATH)
        run_dir = self._engine.get_workspace().get_run_dir(job_id)
        try:
            check_in_run_folder(path, run_dir)
            if self.settings.transfer == MODE_STREAM:
                raise _NotVisible(f"this server receives models by streaming ({TRANSFER}={MODE_STREAM})")
            opened = open_in_run_folder(path, run_dir)
        except RefusedFile as e:
            raise _Refused(f"job {job_id}: {e}")
        except OSError as e:
            raise _NotVisible(f"{path} is not visible in job {job_id}'s run folder here ({e.strerror or e})")
        with opened:
            seen = list(payload.get(Key.IDENTITY) or [])
            # before linking: a link changes the inode's ctime
            if opened.identity() != seen:
                raise _NotVisible(f"{path} is not the sender's file here")
            staged = os.path.join(staging, uuid.uuid4().hex)
            if not opened.link_to(staged):
                kind = str(payload.get(Key.KIND))
                _check_staging_space(staging, seen[2] if len(seen) > 2 else None, job_id, kind)
                try:
                    opened.copy_to(staged)
                except OSError as e:
                    raise _volume_full(e, staging, job_id, kind)
                return staged, "copy", False
            # the link is the very inode that was opened and checked; its size and mtime unchanged
            return staged, "link", opened.identity()[:4] == seen[:4]

    def _stage_stream(self, origin: str, payload: dict, staging: str) -> str:
        from nvflare.fuel.f3.streaming.file_downloader import download_file

        err, path = download_file(
            from_fqcn=origin,
            ref_id=str(payload.get(Key.REF_ID)),
            per_request_timeout=_CHUNK_TIMEOUT,
            cell=self._cell,
            location=staging,
        )
        if err or not path:
            if path and os.path.exists(path):
                os.remove(path)
            raise RuntimeError(f"could not receive the model from {origin}: {err}")
        return path


def _senders_hash(payload: dict):
    """(sha256, size) the job process sent for the file its IDENTITY names, if well-formed."""
    sha256, size, identity = payload.get(Key.SHA256), payload.get(Key.SIZE), payload.get(Key.IDENTITY)
    if not (isinstance(sha256, str) and _SHA256_HEX.fullmatch(sha256)):
        return None
    if type(size) is not int or not isinstance(identity, (list, tuple)) or len(identity) < 3 or size != identity[2]:
        return None
    return sha256, size
