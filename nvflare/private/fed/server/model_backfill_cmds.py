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
"""Admin command ``backfill_job_model <job_id> | --all``: models for jobs that finished without them.

Rights: backfilling stores, as a component, a file the user could already fetch with
``download_job`` (it is in the job's workspace), so it is authorized exactly like
``download_job`` of that job: the policy's ``download_job`` right is evaluated here for
the job's submitter, without a policy change or a patch to security.py. The batch form
``--all`` touches every job of the active study, so it is for project_admin users only,
and each job is still authorized one by one. Refusals are audited (AuditedAuthzFilter),
the command itself by CommandAudit, and every stored model by an audit event of its own.

The batch stops taking new jobs when most of the admin client's command timeout is used
(the client gives up after it): it is idempotent, so running it again goes on where it
stopped, and the reply says so.

Concurrency: backfills of different jobs run in parallel, a second backfill of the same
job is answered "in progress" at once (model_backfill), and at most model_backfill_limit
commands backfill at the same time; one beyond it is refused at once and audited
(model_backfill_limits: the work runs in this command's thread, taken from the pool every
message to the server shares, so nothing here ever waits for another backfill).
"""

import os
import shutil
import time
import uuid
from typing import List

from nvflare.apis.fl_constant import AdminCommandNames
from nvflare.apis.job_def import JobMetaKey, get_job_meta_study
from nvflare.app_common.model_publishing import model_backfill as mb
from nvflare.app_common.model_publishing.model_publish_settings import ENABLED, load_publish_settings
from nvflare.fuel.hci.conn import Connection
from nvflare.fuel.hci.model_backfill_defs import ALL_JOBS, BACKFILL_JOB_MODEL, BACKFILL_RESULTS, BATCH_ROLE
from nvflare.fuel.hci.proto import MetaStatusValue, ReplyKeyword, make_meta
from nvflare.fuel.hci.reg import CommandModuleSpec, CommandSpec
from nvflare.fuel.hci.server.authz import PreAuthzReturnCode
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.fuel.sec.audit import AuditService
from nvflare.fuel.sec.authz import AuthorizationService, AuthzContext, Person
from nvflare.private.fed.server.job_cmds import JobCommandModule, _active_study_from_conn
from nvflare.private.fed.server.model_backfill_limits import (
    DEFAULT_LIMIT,
    BackfillSlots,
    busy_message,
    model_backfill_limit,
)
from nvflare.security.logging import secure_format_exception, secure_log_traceback

_BATCH = "_model_backfill_batch"
DEFAULT_CMD_TIMEOUT = 5.0  # what an admin client waits for a reply unless its "timeout" command changed it
BUDGET_SHARE = 0.6


class ModelBackfillCommandModule(JobCommandModule):
    """Reuses JobCommandModule's job-id pre-authorization and transaction folders."""

    USAGE = f"{BACKFILL_JOB_MODEL} job_id | {ALL_JOBS}"
    slots = BackfillSlots(DEFAULT_LIMIT)  # replaced by the configured ones when the server starts

    def get_spec(self):
        # Once, while the server starts: a bad model_backfill_limit stops it here.
        ModelBackfillCommandModule.slots = BackfillSlots(model_backfill_limit())
        return CommandModuleSpec(
            name="model_backfill",
            cmd_specs=[
                CommandSpec(
                    name=BACKFILL_JOB_MODEL,
                    description="publish MODEL_global_model / MODEL_best_global_model of a finished job that has none, "
                    f"from its stored workspace ({ALL_JOBS}: every job, project_admin only)",
                    usage=self.USAGE,
                    handler_func=self.backfill_job_model,
                    authz_func=self.authorize_backfill,
                )
            ],
        )

    # -- authorization -------------------------------------------------------------------
    def authorize_backfill(self, conn: Connection, args: List[str]):
        if len(args) != 2:
            conn.append_error(
                f"Usage: {self.USAGE}", meta=make_meta(MetaStatusValue.SYNTAX_ERROR, f"Usage: {self.USAGE}")
            )
            return PreAuthzReturnCode.ERROR
        if args[1] == ALL_JOBS:
            role = conn.get_prop(ConnProps.USER_ROLE, "")
            if role != BATCH_ROLE:
                msg = f"{BACKFILL_JOB_MODEL} {ALL_JOBS} is for {BATCH_ROLE} users only (your role: {role or 'none'})"
                conn.append_error(msg, meta=make_meta(MetaStatusValue.NOT_AUTHORIZED, msg))
                return PreAuthzReturnCode.ERROR
            conn.set_prop(_BATCH, True)
            return PreAuthzReturnCode.OK  # each job is authorized in the handler
        rc = self.authorize_job_id(conn, args)
        if rc != PreAuthzReturnCode.REQUIRE_AUTHZ:
            return rc
        job = conn.get_prop(self.JOB)
        refusal = self._download_refusal(conn, job.meta)
        if refusal:
            conn.append_error(refusal, meta=make_meta(MetaStatusValue.NOT_AUTHORIZED, refusal))
            return PreAuthzReturnCode.ERROR
        return PreAuthzReturnCode.OK

    @staticmethod
    def _download_refusal(conn: Connection, job_meta: dict) -> str:
        """'' when the policy grants this user download_job of the job, else what AuthzFilter would say."""
        user = Person(
            name=conn.get_prop(ConnProps.USER_NAME, ""),
            org=conn.get_prop(ConnProps.USER_ORG, ""),
            role=conn.get_prop(ConnProps.USER_ROLE, ""),
        )
        submitter = Person(
            name=job_meta.get(JobMetaKey.SUBMITTER_NAME.value, ""),
            org=job_meta.get(JobMetaKey.SUBMITTER_ORG.value, ""),
            role=job_meta.get(JobMetaKey.SUBMITTER_ROLE.value, ""),
        )
        ctx = AuthzContext(user=user, submitter=submitter, right=AdminCommandNames.DOWNLOAD_JOB)
        authorized, err = AuthorizationService.authorize(ctx)
        if err:
            return f"Authorization Error: {err}"
        if not authorized:
            return f"This action is {ReplyKeyword.NOT_AUTHORIZED}"
        return ""

    # -- handler -------------------------------------------------------------------------
    def backfill_job_model(self, conn: Connection, args: List[str]):
        try:
            settings = load_publish_settings()
        except ValueError as e:
            return self._error(conn, f"cannot backfill: {e}")
        if not settings.enabled:
            return self._error(
                conn, f"model publishing is disabled on this server ({ENABLED}=false): nothing is backfilled"
            )
        slots = ModelBackfillCommandModule.slots
        with slots.take() as taken:
            if not taken:
                msg = busy_message(slots.limit)
                AuditService.add_event(
                    user=conn.get_prop(ConnProps.USER_NAME, "?"),
                    action=" ".join(args)[:100],
                    msg=f" REFUSED: {msg}",
                )
                return self._error(conn, msg)
            self._backfill(conn, settings)

    def _backfill(self, conn: Connection, settings):
        engine = conn.app_ctx
        job_manager = engine.job_def_manager
        if conn.get_prop(_BATCH, False):
            return self._backfill_all(conn, engine, job_manager, settings)
        result = self._backfill_one(conn, engine, job_manager, conn.get_prop(self.JOB), settings)
        line = f"job {result.job_id}: {result.outcome}: {result.message}"
        meta_extra = {BACKFILL_RESULTS: [result.as_dict()]}
        if result.outcome in (mb.BACKFILLED, mb.SKIPPED):
            conn.append_string(line)
            conn.append_success("", meta=make_meta(MetaStatusValue.OK, extra=meta_extra))
        else:
            conn.append_error(line, meta=make_meta(MetaStatusValue.ERROR, line, extra=meta_extra))

    def _backfill_all(self, conn, engine, job_manager, settings):
        study = _active_study_from_conn(conn)
        with engine.new_context() as fl_ctx:
            jobs = [j for j in job_manager.get_all_jobs(fl_ctx) if get_job_meta_study(j.meta) == study]
        jobs.sort(key=lambda j: str(j.meta.get(JobMetaKey.SUBMIT_TIME_ISO.value, "")))
        budget = BUDGET_SHARE * float(conn.get_prop(ConnProps.CMD_TIMEOUT, None) or DEFAULT_CMD_TIMEOUT)
        start = time.time()
        results = []
        for job in jobs:
            if time.time() - start > budget:
                results.append(
                    mb.BackfillResult(
                        job.job_id, "not looked at", f"time budget of {budget:.0f} s used up: run the command again"
                    )
                )
                continue
            refusal = self._download_refusal(conn, job.meta)
            if refusal:
                results.append(mb.BackfillResult(job.job_id, mb.REFUSED, refusal))
                continue
            results.append(self._backfill_one(conn, engine, job_manager, job, settings))
        table = conn.append_table(["job", "outcome", "details"])
        for r in results:
            table.add_row([r.job_id, r.outcome, r.message])
        counts = {}
        for r in results:
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no jobs"
        conn.append_string(f"{len(results)} job(s) in study {study}: {summary}")
        conn.append_success(
            "", meta=make_meta(MetaStatusValue.OK, extra={BACKFILL_RESULTS: [r.as_dict() for r in results]})
        )

    def _backfill_one(self, conn, engine, job_manager, job, settings) -> mb.BackfillResult:
        scratch = str(uuid.uuid4())
        folder = self.tx_path(conn, scratch)
        self.logger.info(f"{BACKFILL_JOB_MODEL} {job.job_id}: started")

        def open_component(name):
            with engine.new_context() as ctx:
                job_manager.get_storage_for_download(job.job_id, folder, name, name, ctx)
            path = os.path.join(folder, job.job_id, name)
            return path if os.path.exists(path) else None

        try:
            with engine.new_context() as fl_ctx:
                result = mb.backfill_job(engine, job_manager, job, settings, fl_ctx, open_component)
        except Exception as e:
            secure_log_traceback()
            self.logger.error(f"backfill of job {job.job_id} failed: {secure_format_exception(e)}")
            result = mb.BackfillResult(job.job_id, mb.FAILED, f"internal error: {secure_format_exception(e)}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if result.outcome == mb.BACKFILLED or result.outcome in (mb.REFUSED, mb.FAILED):
            AuditService.add_event(
                user=conn.get_prop(ConnProps.USER_NAME, "?"),
                action=f"{BACKFILL_JOB_MODEL} {job.job_id}"[:100],
                msg=f" {result.outcome.upper()}: {result.message}"[:400],
            )
        self.logger.info(f"{BACKFILL_JOB_MODEL} {job.job_id}: {result.outcome}: {result.message}")
        return result

    @staticmethod
    def _error(conn: Connection, msg: str):
        conn.append_error(msg, meta=make_meta(MetaStatusValue.ERROR, msg))
