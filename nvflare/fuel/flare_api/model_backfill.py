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
"""FLARE API methods for backfilling models; ``Session`` binds them as its own methods.

Backfilling reads and hashes a model inside the job's workspace archive on the server,
which takes longer than the 5 s an admin command may take by default: each call raises
the session's command timeout for its own duration (``timeout``) and restores it.
"""

import contextlib
from typing import List

from nvflare.fuel.flare_api.api_spec import InternalError
from nvflare.fuel.hci.client.api import ResultKey
from nvflare.fuel.hci.cmd_arg_utils import join_args
from nvflare.fuel.hci.model_backfill_defs import ALL_JOBS, BACKFILL_JOB_MODEL, BACKFILL_RESULTS

DEFAULT_TIMEOUT = 600.0


class BackfillFailed(InternalError):
    """The job has no model that could be backfilled, or its archive was refused (the message says which)."""


@contextlib.contextmanager
def _command_timeout(session, timeout: float):
    api = session.api
    before = api.cmd_timeout
    api.set_command_timeout(max(float(timeout), float(before or 0)))
    try:
        yield
    finally:
        if before:
            api.set_command_timeout(before)
        else:
            api.unset_command_timeout()


def _results(session, parts: List[str], timeout: float) -> List[dict]:
    with _command_timeout(session, timeout):
        try:
            result = session._do_command(join_args(parts))
        except InternalError as e:
            prefix = "error: "
            if str(e).startswith(prefix):
                raise BackfillFailed(str(e)[len(prefix) :]) from None
            raise
    return result[ResultKey.META].get(BACKFILL_RESULTS) or []


def backfill_job_model(self, job_id: str, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Publish ``MODEL_global_model`` / ``MODEL_best_global_model`` of a finished job that has none.

    The models are taken from the job's stored workspace archive (the files its persistor
    wrote, as its own config names them) and recorded like published ones (sha256, size,
    file name, format, ``"backfilled": true``). Allowed to whoever may ``download_job``
    the job. Idempotent: a job that already has a model is skipped.

    Returns: ``{"job_id", "outcome": "backfilled" | "skipped", "message", "stored": [...]}``.

    Raises:
        JobNotFound: invalid or unknown job id.
        AuthorizationError: the user may not download this job.
        BackfillFailed: no model to take, the archive was refused, or the job is not finished.
    """
    self._validate_job_id(job_id)
    found = _results(self, [BACKFILL_JOB_MODEL, job_id], timeout)
    return found[0] if found else {}


def backfill_all_job_models(self, timeout: float = DEFAULT_TIMEOUT) -> List[dict]:
    """``backfill_job_model`` for every job of the session's study (project_admin only).

    Returns one dict per job (see backfill_job_model), ``outcome`` also ``"no model"``,
    ``"refused"``, ``"failed"``, ``"not finished"`` or ``"not looked at"`` (the time budget,
    60 % of ``timeout``, was used up: call again, done jobs are skipped).
    """
    return _results(self, [BACKFILL_JOB_MODEL, ALL_JOBS], timeout)
