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
"""The server half of fl_admin's TAB completion for the fork's job commands.

Why on the server: only the server knows which jobs exist and, above all, which ones this
user may use a command on. So a candidate is offered only when the command would be
authorized for it: for each job of the session's study, the policy is evaluated for the
user and that job's submitter with the right the command checks (download_job_component:
its own right, or upstream's download_job_components for a job whose site logs the user
may fetch; list_job_component_info: its own right, i.e. view; backfill_job_model:
download_job, as the command does). A job the user may not use is never named, not even
by its id. Components are offered for one job the user may download from, each only if
its own download right holds (a lead gets the job's models, not the sites' logs).

Nothing here refuses or audits anything: an unauthorized candidate is simply left out
(the command itself is still authorized, and audited, when the user runs it). Each reply
holds at most MAX_CANDIDATES, most recent jobs first, and reads only job metas and the
store's component list - what list_jobs and list_job_component_info already read.
"""

import datetime
from typing import List, Optional

from nvflare.apis.fl_constant import AdminCommandNames
from nvflare.apis.job_def import JobMetaKey, get_job_meta_study, is_valid_job_id
from nvflare.fuel.hci.conn import Connection
from nvflare.fuel.hci.job_component_defs import (
    CANDIDATES,
    COMPLETED_COMMANDS,
    COMPONENTS,
    JOBS,
    MAX_CANDIDATES,
    TRUNCATED,
)
from nvflare.fuel.hci.model_backfill_defs import ALL_JOBS, BACKFILL_JOB_MODEL, BATCH_ROLE
from nvflare.fuel.hci.proto import MetaStatusValue, make_meta
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.fuel.sec.authz import AuthorizationService, AuthzContext, Person
from nvflare.private.fed.server.job_component_rights import download_right, extra_components

USAGE = "_complete_job_args <command> jobs [job_id_prefix] | _complete_job_args <command> components <job_id>"

# the rights that let a user use each command on a job (any one of them)
_JOB_RIGHTS = {
    AdminCommandNames.DOWNLOAD_JOB_COMPONENT: (
        AdminCommandNames.DOWNLOAD_JOB_COMPONENT,
        AdminCommandNames.DOWNLOAD_JOB_COMPONENTS,
    ),
    AdminCommandNames.LIST_JOB_COMPONENT_INFO: (AdminCommandNames.LIST_JOB_COMPONENT_INFO,),
    BACKFILL_JOB_MODEL: (AdminCommandNames.DOWNLOAD_JOB,),
}


def _person(conn: Connection) -> Person:
    return Person(
        name=conn.get_prop(ConnProps.USER_NAME, ""),
        org=conn.get_prop(ConnProps.USER_ORG, ""),
        role=conn.get_prop(ConnProps.USER_ROLE, ""),
    )


def _submitter(meta: dict) -> Person:
    return Person(
        name=meta.get(JobMetaKey.SUBMITTER_NAME.value, ""),
        org=meta.get(JobMetaKey.SUBMITTER_ORG.value, ""),
        role=meta.get(JobMetaKey.SUBMITTER_ROLE.value, ""),
    )


def holds(user: Person, meta: dict, right: str) -> bool:
    """Whether the policy grants ``right`` to ``user`` for the job of ``meta`` (no audit, no message)."""
    try:
        authorized, err = AuthorizationService.authorize(
            AuthzContext(user=user, submitter=_submitter(meta), right=right)
        )
    except Exception:
        return False
    return bool(authorized) and not err


def _job_info(meta: dict) -> str:
    submitted = meta.get(JobMetaKey.SUBMIT_TIME.value)
    try:
        when = datetime.datetime.fromtimestamp(float(submitted)).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        when = ""
    parts = [meta.get(JobMetaKey.JOB_NAME.value) or "", meta.get(JobMetaKey.STATUS.value) or "", when]
    return "  ".join(str(p)[:60] for p in parts if p)


def _reply(conn: Connection, candidates: List[dict], truncated: bool = False):
    conn.append_success("", meta=make_meta(MetaStatusValue.OK, extra={CANDIDATES: candidates, TRUNCATED: truncated}))


def complete_job_args(conn: Connection, args: List[str]):
    """Handler of the internal command ``_complete_job_args`` (registered by job_component_cmds)."""
    command, kind = (args[1], args[2]) if len(args) >= 3 else ("", "")
    if command not in COMPLETED_COMMANDS or kind not in COMPLETED_COMMANDS[command] or len(args) > 4:
        conn.append_error(f"Usage: {USAGE}", meta=make_meta(MetaStatusValue.SYNTAX_ERROR, f"Usage: {USAGE}"))
        return
    word = args[3] if len(args) == 4 else ""
    engine = conn.app_ctx
    with engine.new_context() as fl_ctx:
        if kind == JOBS:
            _complete_jobs(conn, command, word.lower(), engine.job_def_manager.get_all_jobs(fl_ctx))
        else:
            _complete_components(conn, word.lower(), engine.job_def_manager, fl_ctx)


def _visible(conn: Connection, job) -> Optional[dict]:
    """The job's meta if the job is in the session's study (as list_jobs shows them), else None."""
    from nvflare.private.fed.server.job_cmds import _active_study_from_conn

    meta = getattr(job, "meta", None)
    if not isinstance(meta, dict):
        return None
    return meta if get_job_meta_study(meta) == _active_study_from_conn(conn) else None


def _complete_jobs(conn: Connection, command: str, prefix: str, jobs):
    user = _person(conn)
    rights = _JOB_RIGHTS[command]
    found = []
    for job in jobs or []:
        meta = _visible(conn, job)
        job_id = str((meta or {}).get(JobMetaKey.JOB_ID.value) or "")
        if meta and job_id.startswith(prefix) and any(holds(user, meta, r) for r in rights):
            found.append((float(meta.get(JobMetaKey.SUBMIT_TIME.value) or 0), job_id, _job_info(meta)))
    found.sort(reverse=True)  # most recent first
    candidates = [{"value": job_id, "info": info} for _, job_id, info in found[:MAX_CANDIDATES]]
    if command == BACKFILL_JOB_MODEL and user.role == BATCH_ROLE and ALL_JOBS.startswith(prefix):
        candidates.insert(0, {"value": ALL_JOBS, "info": "every job of the study"})
    _reply(conn, candidates, len(found) > MAX_CANDIDATES)


def _complete_components(conn: Connection, job_id: str, job_def_manager, fl_ctx):
    job = job_def_manager.get_job(job_id, fl_ctx) if is_valid_job_id(job_id) else None
    meta = _visible(conn, job) if job else None
    if not meta:
        return _reply(conn, [])
    user = _person(conn)
    names = extra_components(job_def_manager.list_components(jid=job_id, fl_ctx=fl_ctx))
    allowed = [n for n in names if holds(user, meta, download_right(n))]
    _reply(conn, [{"value": n, "info": ""} for n in allowed[:MAX_CANDIDATES]], len(allowed) > MAX_CANDIDATES)
