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
"""Admin commands for single job-store components: ``download_job_component`` and
``list_job_component_info``.

``download_job_components`` pulls every extra component (all client logs too) and
``download_job`` the whole workspace; users mostly want one file, the trained model.
The command streams that one component straight from the store: the job manager's
get_storage_for_download makes a symlink in the transaction folder and the range server
(component_transfer_server) serves it by offset to this admin, so the server neither copies
nor zips it and holds only the ranges in flight. The component's record (sha256, size, file name) goes ahead of the data so
the admin client can verify what it received before giving the file its final name.

Rights depend on what is downloaded (job_component_rights.download_right). Models (MODEL_*) and the job's
own workspace/data/meta follow ``download_job_component``, which security.py maps to the
download_job category, so existing policies cover them unchanged. Everything else in a
job's store - LOG_<site>, ERRORLOG_<site> and any other kind a site uploads - belongs to
the sites: it needs exactly what upstream requires to download it,
``download_job_components`` (no category: project_admin only under the default policy,
whatever a site's authorization.json grants for that right otherwise). The
pre-authorization picks the right from the component argument and checks it the way
AuthzFilter would (audited_authz.authorize_right), so a refusal reads and is audited
like any other. list_job_component_info follows ``view``, like get_job_meta.
"""

import os
import shutil
import uuid
from typing import List

from nvflare.apis.fl_constant import AdminCommandNames
from nvflare.apis.job_def_manager_spec import JobDefManagerSpec
from nvflare.apis.storage import DataTypes
from nvflare.apis.utils.component_names import FIXED_COMPONENTS, component_name_problem, shown_name
from nvflare.apis.utils.component_records import FILE_NAME, SHA256, SIZE, get_record
from nvflare.fuel.f3.drivers import direct_download_route
from nvflare.fuel.hci.component_info_table import add_info_table, info_row
from nvflare.fuel.hci.conn import Connection
from nvflare.fuel.hci.job_component_defs import (
    COMPLETE_JOB_ARGS,
    COMPONENT_INFO,
    COMPONENT_RECORD,
    PULL_COMPONENT_FQN,
    RANGE_TRANSFER,
    RECORDED,
    TRANSFER_ID,
)
from nvflare.fuel.hci.proto import MetaKey, MetaStatusValue, ReplyKeyword, make_meta
from nvflare.fuel.hci.reg import CommandModuleSpec, CommandSpec
from nvflare.fuel.hci.server import download_pacing
from nvflare.fuel.hci.server.audited_authz import authorize_right
from nvflare.fuel.hci.server.authz import PreAuthzReturnCode
from nvflare.fuel.hci.server.download_settings import (
    admin_download_rate_limit,
    check_download_settings,
    download_limits,
)
from nvflare.fuel.utils.file_digest import sha256_and_size
from nvflare.private.fed.server.component_transfer_server import AdminDownload
from nvflare.private.fed.server.job_arg_completion import USAGE as completion_usage
from nvflare.private.fed.server.job_arg_completion import complete_job_args
from nvflare.private.fed.server.job_cmds import JobCommandModule
from nvflare.private.fed.server.job_component_rights import component_kind, download_right, extra_components
from nvflare.security.logging import secure_format_exception, secure_log_traceback


class JobComponentCommandModule(JobCommandModule):
    """Reuses JobCommandModule's job-id pre-authorization and transaction folders."""

    DOWNLOAD_USAGE = f"{AdminCommandNames.DOWNLOAD_JOB_COMPONENT} job_id component [destination]"
    INFO_USAGE = f"{AdminCommandNames.LIST_JOB_COMPONENT_INFO} job_id"

    def get_spec(self):
        # The admin server asks for the spec once, while the server starts and after its
        # config is loaded: the earliest point where a bad download setting can stop it.
        check_download_settings()
        direct_download_route.set_response_timeout(download_limits().response_timeout)
        download_pacing.set_rate_limit(admin_download_rate_limit())
        return CommandModuleSpec(
            name="job_component",
            cmd_specs=[
                CommandSpec(
                    name=AdminCommandNames.DOWNLOAD_JOB_COMPONENT,
                    description="download one component of a job (e.g. MODEL_global_model) as a file",
                    usage=self.DOWNLOAD_USAGE,
                    handler_func=self.download_job_component,
                    authz_func=self.authorize_download_component,
                    client_cmd=PULL_COMPONENT_FQN,
                ),
                CommandSpec(
                    name=COMPLETE_JOB_ARGS,  # fl_admin's TAB completion (job_arg_completion)
                    description="job ids or component names a command of this user may take",
                    usage=completion_usage,
                    handler_func=complete_job_args,
                    authz_func=self.authorize_completion,
                    visible=False,
                ),
                CommandSpec(
                    name=AdminCommandNames.LIST_JOB_COMPONENT_INFO,
                    description="list the components of a job: kind, original file name, format, size, round, best metric, sha256",
                    usage=self.INFO_USAGE,
                    handler_func=self.list_job_component_info,
                    authz_func=self.authorize_component_info,
                ),
            ],
        )

    # -- pre-authorization ---------------------------------------------------------------
    # authorize_job would read the component as a command target; check the argument count
    # here and pre-authorize on the job id alone, as authorize_job_file does.
    def _authorize_with_args(self, conn: Connection, args: List[str], count: int, usage: str):
        if len(args) != count:
            conn.append_error(f"Usage: {usage}", meta=make_meta(MetaStatusValue.SYNTAX_ERROR, f"Usage: {usage}"))
            return PreAuthzReturnCode.ERROR
        return self.authorize_job_id(conn, args[:2])

    def authorize_download_component(self, conn: Connection, args: List[str]):
        # The server gets job_id and component; [destination] stays on the admin client.
        rc = self._authorize_with_args(conn, args, 3, self.DOWNLOAD_USAGE)
        right = download_right(args[2]) if rc == PreAuthzReturnCode.REQUIRE_AUTHZ else None
        if right is None or right == AdminCommandNames.DOWNLOAD_JOB_COMPONENT:
            return rc  # AuthzFilter checks the command's own right
        # A site's component: upstream's download_job_components right, and only that.
        return PreAuthzReturnCode.OK if authorize_right(conn, right) else PreAuthzReturnCode.ERROR

    def authorize_component_info(self, conn: Connection, args: List[str]):
        return self._authorize_with_args(conn, args, 2, self.INFO_USAGE)

    @staticmethod
    def authorize_completion(conn: Connection, args: List[str]):
        # No right of its own: each candidate is offered only if the user holds, for its
        # job, the right of the command being completed (job_arg_completion).
        return PreAuthzReturnCode.OK

    # -- handlers ------------------------------------------------------------------------
    def _job_manager(self, conn: Connection):
        engine = conn.app_ctx
        job_def_manager = engine.job_def_manager
        if not isinstance(job_def_manager, JobDefManagerSpec):
            raise TypeError(f"job_def_manager must be JobDefManagerSpec but got {type(job_def_manager)}")
        return engine, job_def_manager

    def download_job_component(self, conn: Connection, args: List[str]):
        job_id = conn.get_prop(self.JOB_ID)
        component = args[2]
        problem = component_name_problem(component)
        if problem:
            conn.append_error(problem, meta=make_meta(MetaStatusValue.SYNTAX_ERROR, problem))
            return
        if component in FIXED_COMPONENTS:
            msg = f"component {shown_name(component)} is part of every job: download it with download_job"
            conn.append_error(msg, meta=make_meta(MetaStatusValue.SYNTAX_ERROR, msg))
            return

        engine, job_def_manager = self._job_manager(conn)
        tx_id = str(uuid.uuid4())
        with engine.new_context() as fl_ctx:
            available = extra_components(job_def_manager.list_components(jid=job_id, fl_ctx=fl_ctx))
            if component not in available:
                has = ", ".join(available) if available else "no components"
                msg = f"component {shown_name(component)} not found in job {job_id}; the job has: {has}"
                conn.append_error(msg, meta=make_meta(MetaStatusValue.NO_JOB_COMPONENTS, msg))
                return
            try:
                job_def_manager.get_storage_for_download(
                    job_id, self.tx_path(conn, tx_id), component, component, fl_ctx
                )
                record = self._record_for(conn.get_prop(self.JOB), component, self.tx_path(conn, tx_id, job_id))
                transfer = self._open_range_transfer(
                    conn, tx_id, os.path.join(self.tx_path(conn, tx_id, job_id), component)
                )
                if transfer is None:
                    return
                conn.append_string(
                    "OK",
                    meta=make_meta(
                        MetaStatusValue.OK,
                        extra={COMPONENT_RECORD: record, RANGE_TRANSFER: transfer, MetaKey.FOLDER_NAME: job_id},
                    ),
                )
            except Exception as e:
                secure_log_traceback()
                self.logger.error(f"exception downloading {component} of job {job_id}: {secure_format_exception(e)}")
                self._remove_tx_folder(conn, tx_id)
                conn.append_error("internal error", meta=make_meta(MetaStatusValue.INTERNAL_ERROR))

    @staticmethod
    def _record_for(job, component: str, folder: str) -> dict:
        record = get_record(job.meta if job else None, component)
        if record and SHA256 in record and SIZE in record:
            return {**record, RECORDED: True}
        # LOG_/ERRORLOG_ components and components stored by older versions: measure now.
        sha, size = sha256_and_size(os.path.join(folder, component))
        return {SHA256: sha, SIZE: size, FILE_NAME: component, RECORDED: False}

    def list_job_component_info(self, conn: Connection, args: List[str]):
        job_id = conn.get_prop(self.JOB_ID)
        job = conn.get_prop(self.JOB)
        engine, job_def_manager = self._job_manager(conn)
        scratch = str(uuid.uuid4())
        rows = []
        try:
            with engine.new_context() as fl_ctx:
                for name in extra_components(job_def_manager.list_components(jid=job_id, fl_ctx=fl_ctx)):
                    # Sizes through the job manager's own download preparation (a symlink
                    # for FilesystemStorage), so this works for any JobDefManager store.
                    job_def_manager.get_storage_for_download(job_id, self.tx_path(conn, scratch), name, name, fl_ctx)
                    size = os.path.getsize(self.tx_path(conn, scratch, os.path.join(job_id, name)))
                    record = get_record(job.meta if job else None, name)
                    rows.append(info_row(name, component_kind(name), size, record))
        finally:
            self._remove_tx_folder(conn, scratch)
        add_info_table(conn, rows)
        if not rows:
            conn.append_string(f"job {job_id} has no components to download")
        conn.append_success("", meta=make_meta(MetaStatusValue.OK, extra={COMPONENT_INFO: rows}))

    def _remove_tx_folder(self, conn: Connection, tx_id: str):
        """Remove a command's transaction folder and all in it.

        What upstream's private JobCommandModule._clean_up_download does, through its public
        BinaryTransfer.tx_path (tests/upstream/test_upstream_shapes.py pins that path).
        """
        shutil.rmtree(self.tx_path(conn, tx_id), ignore_errors=True)

    def _open_range_transfer(self, conn: Connection, tx_id: str, path: str):
        """Serve ``path`` to this admin's cell, bound to its session like upstream's downloads."""
        download = AdminDownload(conn)
        session_mgr, sess_id = download.session_mgr, download.session.sess_id
        tx_dir = self.tx_path(conn, tx_id)

        def ended(status):
            session_mgr.end_download(sess_id, tx_id)
            shutil.rmtree(tx_dir, ignore_errors=True)

        transfer = download.open(path, activity_tx_id=tx_id, on_end=ended)

        def cancel():
            download.server.end(transfer[TRANSFER_ID], "cancelled")

        if not session_mgr.bind_download(sess_id, tx_id, cancel):
            cancel()
            conn.append_error(ReplyKeyword.SESSION_INACTIVE)
            return None
        return transfer
