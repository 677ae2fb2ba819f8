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
"""Publish the job's final and best global model from the job's own server process.

Runs at END_RUN in the server job process (SJ): the last moment the run folder and the
persistor still exist, and before the parent process (SP) archives the workspace and
shows the job as finished. Each model is handed to the JobModelStore in the SP and this
handler waits until it is stored, so a user who sees FINISHED can download the model.
When the SP sees the same file (same host, the default process launcher) it links or
copies it itself; otherwise it pulls the bytes from this process. Nothing here may
fail or hang the job: every problem is logged and the job ends as it would have.

The sha256 the record needs is computed while the job trains: each time the persistor
saves a model (AFTER_LEARNABLE_PERSIST) or a new best is announced
(GLOBAL_BEST_MODEL_AVAILABLE), the persistor's files are handed to a background hasher
(model_prehash). At END_RUN the hash goes along with the request when the file is still
exactly the one that was hashed, so the store links the file without reading it;
otherwise the store hashes it, as it always did.

What may be published is one rule (run_folder_files): a regular file inside this job's own
run folder, opened once and checked on the open descriptor. A persistor's paths are job
configuration, i.e. user input: a path that leads elsewhere (an absolute
``best_global_model_file_name``, ``..``, a symlink out) is refused and logged, never
hashed, sent, streamed or deleted. The request names the file relative to the run
folder, streaming reads the descriptor, and deletion (model_publish_drop_from_workspace)
removes the entry only after checking it is still the published file.
"""

import time

from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import FLContextKey, ProcessType
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.app_event_type import AppEventType
from nvflare.app_common.model_publishing.best_model_keeper import BestModelKeeper
from nvflare.app_common.model_publishing.model_inventory import (
    FALLBACK_DIR,
    ModelFile,
    find_persistor,
    model_from_context,
    models_from_inventory,
)
from nvflare.app_common.model_publishing.model_prehash import ModelPreHasher, PreHash
from nvflare.app_common.model_publishing.model_publish_defs import (
    MODE_LOCAL,
    MODE_STREAM,
    Key,
    Status,
    file_identity,
    send_publish_request,
)
from nvflare.app_common.model_publishing.model_publish_settings import publish_timeout
from nvflare.app_common.model_publishing.run_folder_files import (
    RefusedFile,
    RunFolderFile,
    open_in_run_folder,
    remove_from_run_folder,
    remove_run_folder_dir,
)
from nvflare.fuel.f3.streaming.download_service import Downloadable, ProduceRC
from nvflare.fuel.f3.streaming.file_downloader import DEFAULT_CHUNK_SIZE
from nvflare.fuel.f3.streaming.obj_downloader import ObjectDownloader
from nvflare.security.logging import secure_format_exception
from nvflare.widgets.widget import Widget


class ModelPublisher(Widget):
    """Job-side half of model publishing; the server's JobModelStore adds it to every job.

    Args:
        persistor_id: component id of the job's model persistor. When no component has
            this id, the job's only ModelPersistor is used.
        enabled: False turns publishing off for this job (the store then adds nothing).
        timeout: seconds to wait for one model to be stored; default: the server's
            ``model_publish_timeout`` setting.
    """

    def __init__(self, persistor_id: str = AppConstants.DEFAULT_PERSISTOR_ID, enabled: bool = True, timeout=None):
        super().__init__()
        self.persistor_id = persistor_id
        self.enabled = bool(enabled)
        self.timeout = timeout
        self._prehasher = None  # created at the first model the persistor saves
        self.register_event_handler(EventType.END_RUN, self._on_end_run)
        self.register_event_handler(
            [AppEventType.AFTER_LEARNABLE_PERSIST, AppEventType.GLOBAL_BEST_MODEL_AVAILABLE], self._on_model_saved
        )
        # best_model_keeper: a best model for persistors that write none; round and metric for the records
        self._best = BestModelKeeper(self)
        self.register_event_handler(
            [AppEventType.AFTER_LEARNABLE_PERSIST, AppEventType.GLOBAL_BEST_MODEL_AVAILABLE], self._best.on_event
        )

    def _on_model_saved(self, event_type: str, fl_ctx: FLContext):
        """Offer the persistor's model files to the background hasher; never fails, never waits."""
        try:
            if not self._publishes_here(fl_ctx):
                return
            persistor = find_persistor(fl_ctx.get_engine(), self.persistor_id)
            models = models_from_inventory(persistor, fl_ctx) if persistor else []
            if not models:
                return
            self.prehash([m.path for m in models], fl_ctx)
        except Exception as e:
            self.log_warning(fl_ctx, f"Model pre-hashing skipped at {event_type}: {secure_format_exception(e)}")

    def prehash(self, paths, fl_ctx: FLContext):
        """Hand model files to the background hasher, created at the first one (confined to the run folder)."""
        if self._prehasher is None:
            run_dir = fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id())
            self._prehasher = ModelPreHasher(self.logger, run_dir)
        self._prehasher.offer(paths)

    def _publishes_here(self, fl_ctx: FLContext) -> bool:
        return (
            self.enabled
            and fl_ctx.get_process_type() == ProcessType.SERVER_JOB
            and not fl_ctx.get_prop(FLContextKey.SIMULATE_MODE, False)
            and _has_server_parent(fl_ctx.get_engine())
        )

    def _on_end_run(self, event_type: str, fl_ctx: FLContext):
        job_id = fl_ctx.get_job_id()
        try:
            self._publish_all(job_id, fl_ctx)
        except Exception as e:
            self.log_error(fl_ctx, f"Model publishing failed for job {job_id}: {secure_format_exception(e)}")
        finally:
            if self._prehasher is not None:
                self._prehasher.stop()

    def _publish_all(self, job_id: str, fl_ctx: FLContext):
        if not self.enabled:
            self.log_info(fl_ctx, f"Model publishing is turned off for job {job_id} by the job's configuration")
            return
        engine = fl_ctx.get_engine()
        if fl_ctx.get_process_type() != ProcessType.SERVER_JOB:
            self.log_warning(
                fl_ctx, f"ModelPublisher runs only in the server's job process, not in {fl_ctx.get_process_type()}"
            )
            return
        if fl_ctx.get_prop(FLContextKey.SIMULATE_MODE, False) or not _has_server_parent(engine):
            self.log_info(
                fl_ctx, "Model publishing skipped: the simulator has no job store (models stay in the workspace)"
            )
            return

        persistor = find_persistor(engine, self.persistor_id)
        models = models_from_inventory(persistor, fl_ctx) if persistor else []
        run_dir = engine.get_workspace().get_run_dir(job_id)
        try:
            if not models:
                try:
                    model = model_from_context(fl_ctx, run_dir)
                except RefusedFile as e:
                    self.log_error(fl_ctx, f"Refused to publish the FL context's global model of job {job_id}: {e}")
                    return
                models = [model] if model else []
            models = self._best.add_kept_best(models)  # best_model_keeper
            if not models:
                self.log_warning(
                    fl_ctx,
                    f"No model to publish for job {job_id}: persistor {self.persistor_id!r} lists no model file "
                    f"and the FL context holds no global model",
                )
                return

            timeout = float(self.timeout) if self.timeout else publish_timeout()
            self._finish_prehashing(job_id, timeout, fl_ctx)
            for model in models:
                self._publish_one(engine.get_cell(), model, job_id, run_dir, timeout, fl_ctx)
        finally:
            remove_run_folder_dir(run_dir, FALLBACK_DIR)

    def _finish_prehashing(self, job_id: str, timeout: float, fl_ctx: FLContext):
        """Let the hasher finish what it has (bounded by its estimate and the publish timeout), then stop it."""
        hasher = self._prehasher
        if hasher is None:
            return
        start = time.monotonic()
        idle = hasher.wait_idle(min(timeout, 1.0 + 2.0 * hasher.remaining_seconds()))
        hasher.stop()
        waited = time.monotonic() - start
        if idle:
            self.log_info(
                fl_ctx, f"Pre-hashing of job {job_id}'s model files was done ({waited:.2f}s waited at job end)"
            )
        else:
            self.log_info(
                fl_ctx, f"Pre-hashing of job {job_id}'s model files stopped unfinished after {waited:.2f}s at job end"
            )

    def _prehash_of(self, model: ModelFile, identity: list, what: str, fl_ctx: FLContext):
        """The background hasher's result for exactly this file, or None."""
        found = self._prehasher.get(model.path) if self._prehasher else None
        if found is None:
            return None
        if found.identity != tuple(identity):
            self.log_info(fl_ctx, f"Not using the pre-computed sha256 of {what}: the file changed after it was hashed")
            return None
        return found

    def _publish_one(self, cell, model: ModelFile, job_id: str, run_dir: str, timeout: float, fl_ctx: FLContext):
        what = f"{model.kind} model {model.file_name!r} of job {job_id}"
        try:
            opened = open_in_run_folder(model.path, run_dir)
        except RefusedFile as e:
            self.log_error(fl_ctx, f"Refused to publish {what}: {e}")
            return
        except OSError as e:
            self.log_error(fl_ctx, f"Failed to publish {what}: cannot open {model.path}: {e.strerror or e}")
            return
        with opened:
            self._send(cell, model, opened, what, timeout, fl_ctx)

    def _send(self, cell, model: ModelFile, opened: RunFolderFile, what: str, timeout: float, fl_ctx: FLContext):
        start = time.time()
        identity = opened.identity()
        request = {
            Key.KIND: model.kind,
            Key.FILE_NAME: model.file_name,
            Key.FORMAT: model.model_format,
            Key.MODE: MODE_LOCAL,
            # relative to the run folder: the store resolves it under its own view of this job's
            # run folder (container launchers mount it elsewhere) and refuses anything outside
            Key.PATH: opened.relative_path,
            Key.IDENTITY: identity,
        }
        request.update(self._best.request_fields(model.kind))  # best_model_keeper: round/metric
        prehash = self._prehash_of(model, identity, what, fl_ctx)
        if prehash:
            request.update({Key.SHA256: prehash.sha256, Key.SIZE: prehash.size, Key.BLOCKS: prehash.blocks})
        reply = send_publish_request(cell, request, timeout)
        mode = MODE_LOCAL
        if reply.get(Key.STATUS) == Status.NOT_VISIBLE:
            mode = MODE_STREAM
            reply = self._stream(cell, opened, request, timeout, prehash)

        status, message = reply.get(Key.STATUS), reply.get(Key.MESSAGE, "")
        if status == Status.STORED:
            self.log_info(
                fl_ctx,
                f"Published {what} as {reply.get(Key.COMPONENT)} ({mode}, {time.time() - start:.2f}s)",
            )
            if reply.get(Key.DROP_SOURCE) and not model.temporary:
                self._drop(opened, fl_ctx)
        elif status == Status.DISABLED:
            self.log_info(fl_ctx, f"Did not publish {what}: {message}")
        else:
            self.log_error(fl_ctx, f"Failed to publish {what}: {message}")

    def _drop(self, opened: RunFolderFile, fl_ctx: FLContext):
        """Remove the published file from the run folder: only that very file, only inside the run folder."""
        try:
            remove_from_run_folder(opened)
        except FileNotFoundError:
            return
        except RefusedFile as e:
            self.log_error(fl_ctx, f"Did not remove a published model from the job workspace: {e}")
            return
        self.log_info(fl_ctx, f"Removed {opened.real_path} from the job workspace: the job store holds it")

    @staticmethod
    def _stream(cell, opened: RunFolderFile, request: dict, timeout: float, prehash: PreHash = None) -> dict:
        downloader = ObjectDownloader(cell=cell, timeout=timeout, num_receivers=1)
        try:
            # the store checks the received bytes against this; a pre-hash is of this very file
            sha256, size = (prehash.sha256, prehash.size) if prehash else opened.sha256_and_size()
            request = {k: v for k, v in request.items() if k not in (Key.PATH, Key.IDENTITY)}
            ref_id = downloader.add_object(_OpenFileDownloadable(opened, size))
            request.update({Key.MODE: MODE_STREAM, Key.REF_ID: ref_id, Key.SIZE: size, Key.SHA256: sha256})
            return send_publish_request(cell, request, timeout)
        finally:
            downloader.delete_transaction()


_RECEIVED_BYTES = "received_bytes"  # upstream's file_downloader state key (_StateKey.RECEIVED_BYTES)


class _OpenFileDownloadable(Downloadable):
    """Serves upstream's file download protocol (the store's download_file) from an open descriptor.

    Upstream's FileDownloadable reopens its path for every chunk; this reads the descriptor
    that was checked, so the bytes sent are the checked file's whatever happens to the path.
    """

    def __init__(self, opened: RunFolderFile, size: int):
        super().__init__(opened.real_path)
        self.opened, self.size, self.chunk_size = opened, size, DEFAULT_CHUNK_SIZE

    def produce(self, state: dict, requester: str):
        received = (state or {}).get(_RECEIVED_BYTES, 0)
        if type(received) is not int or received < 0:
            return ProduceRC.ERROR, None, {}
        if received >= self.size:
            return ProduceRC.EOF, None, {}
        chunk = self.opened.pread(min(self.chunk_size, self.size - received), received)
        if not chunk:
            return ProduceRC.ERROR, None, {}
        return ProduceRC.OK, chunk, {_RECEIVED_BYTES: received + len(chunk)}


def _has_server_parent(engine) -> bool:
    """A job process's cell is server.<job id>, a child of the parent's; the simulator's server is the root."""
    from nvflare.fuel.f3.cellnet.fqcn import FQCN

    cell = engine.get_cell() if engine else None
    path = FQCN.split(cell.get_fqcn()) if cell else []
    return len(path) >= 2 and path[0] == FQCN.ROOT_SERVER
