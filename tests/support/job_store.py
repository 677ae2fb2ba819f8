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
"""The real job store (SimpleJobDefManager over FilesystemStorage), driven from a test process.

The job manager finds its store through ``fl_ctx.get_engine().get_component(...)`` and
insists the engine is a ServerEngineSpec. Running a whole ServerEngine just for that lookup
buys nothing, so ``StoreOnlyEngine`` answers that one question; the manager and the store
are upstream's real classes, writing real files.
"""

from nvflare.apis.fl_constant import ReservedKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.impl.job_def_manager import SimpleJobDefManager
from nvflare.apis.server_engine_spec import ServerEngineSpec
from nvflare.app_common.storages.filesystem_storage import FilesystemStorage

JOB_STORE_ID = "job_store"


class StoreOnlyEngine(ServerEngineSpec):
    def __init__(self, store):
        self.store = store

    def get_component(self, component_id):
        return self.store if component_id == JOB_STORE_ID else None


# Every other engine method is irrelevant to the job manager's store lookup.
StoreOnlyEngine.__abstractmethods__ = frozenset()


class JobStore:
    """A job manager + store over ``uri_root`` (e.g. a running server's jobs-storage folder)."""

    def __init__(self, uri_root):
        self.uri_root = str(uri_root)
        self.store = FilesystemStorage()
        self.manager = SimpleJobDefManager(uri_root=self.uri_root, job_store_id=JOB_STORE_ID)
        self.fl_ctx = FLContext()
        self.fl_ctx.set_prop(ReservedKey.ENGINE, StoreOnlyEngine(self.store), private=True, sticky=False)

    def create_job_object(self, job_id: str, data: bytes = b"job", meta: dict = None):
        """A bare job object (data + meta), as the job manager lays it out."""
        self.store.create_object(self.manager.job_uri(job_id), data, meta or {"job_id": job_id}, False)
