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
"""How many backfill_job_model commands the server runs at once: model_backfill_limit.

A backfill copies the job's whole workspace archive out of the job store, extracts the
model members and stores them: seconds to minutes of disk work per job. It runs in the
admin command's own thread, one of the 64 of f3's stream callback pool (``stm_cb_<n>``),
which runs the callback of every message the server parent receives as a stream, every
other admin's commands included. Backfills of different jobs run in parallel
(model_backfill keeps one claim per job), so the number of such threads, and of archive
copies on the disk at once, is bounded here: a command beyond model_backfill_limit is
refused at once with the reason, never queued (a queued command would hold its thread
while it waits). ``--all`` is one command and takes one slot; it backfills its jobs one
after the other.

The default, 2, lets an ``--all`` and a single-job backfill (or two admins) go on together
while leaving every other thread of the pool to everything else.
"""

import threading
from contextlib import contextmanager

from nvflare.fuel.common.excepts import ConfigError
from nvflare.fuel.hci.model_backfill_defs import BACKFILL_JOB_MODEL
from nvflare.fuel.hci.server.download_settings import _lookup
from nvflare.fuel.utils.config_service import ConfigService

MODEL_BACKFILL_LIMIT = "model_backfill_limit"
DEFAULT_LIMIT = 2
MAX_LIMIT = 64


def model_backfill_limit() -> int:
    value, where = _lookup(MODEL_BACKFILL_LIMIT, ConfigService.get_int_var)
    if value is None:
        return DEFAULT_LIMIT
    if not 1 <= value <= MAX_LIMIT:
        raise ConfigError(f"invalid {where}: {value} must be a whole number from 1 to {MAX_LIMIT}")
    return value


def busy_message(limit: int) -> str:
    return (
        f"{BACKFILL_JOB_MODEL} refused: {limit} backfill command(s) are running on this server "
        f"({MODEL_BACKFILL_LIMIT} = {limit}); run it again when one has finished"
    )


class BackfillSlots:
    """``limit`` slots for running backfill commands; taking one never waits."""

    def __init__(self, limit: int):
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)

    @contextmanager
    def take(self):
        """True while this command holds a slot; False (at once) when all are taken."""
        taken = self._free.acquire(blocking=False)
        try:
            yield taken
        finally:
            if taken:
                self._free.release()
