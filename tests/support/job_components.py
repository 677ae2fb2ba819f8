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
"""Test helpers for job-store components: a tiny job, extra admin users, and storing a
component into a running system's job store the way the server does.

Components are written with the real SimpleJobDefManager and FilesystemStorage pointed
at the POC server's jobs-storage root (the store is plain files, so the running server
sees them at once), and their record with component_records.save_record. The only
stand-in is _StoreOnlyEngine: the job manager looks its store up through the engine.
"""

import json
from pathlib import Path

# Users added to the shared system's project (besides the POC's admin@, org-admin@, lead@).
MEMBER = "member@nvidia.com"
OTHER_LEAD = "lead2@nvidia.com"
OTHER_ORG_ADMIN = "org-admin@other.org"
OTHER_ORG_LEAD = "lead@other.org"
OTHER_ORG_MEMBER = "member@other.org"
LEAD = "lead@nvidia.com"
ORG_ADMIN = "org-admin@nvidia.com"
EXTRA_USERS = [
    (MEMBER, "nvidia", "member"),
    (OTHER_LEAD, "nvidia", "lead"),
    (OTHER_ORG_ADMIN, "other", "org_admin"),
    (OTHER_ORG_LEAD, "other", "lead"),
    (OTHER_ORG_MEMBER, "other", "member"),
]


def sha256(path) -> str:
    from nvflare.fuel.utils.file_digest import sha256_and_size

    return sha256_and_size(str(path))[0]


def add_role_users(project: dict):
    """FlareSystem project_edit: admin users for the authorization matrix."""
    known = {p["name"] for p in project["participants"]}
    for name, org, role in EXTRA_USERS:
        if name not in known:
            project["participants"].append({"name": name, "type": "admin", "org": org, "role": role})


def write_numpy_job(folder, name: str = "hello-np", n_clients: int = 2, train_seconds: float = 0) -> Path:
    """A one-round numpy scatter-and-gather job (upstream classes only, runs in seconds).

    ``train_seconds`` keeps the clients training that long, for a job that stays RUNNING.
    """
    folder = Path(folder)
    config = folder / "app" / "config"
    config.mkdir(parents=True, exist_ok=True)
    meta = {"name": name, "resource_spec": {}, "min_clients": n_clients, "deploy_map": {"app": ["@ALL"]}}
    server = {
        "format_version": 2,
        "workflows": [
            {
                "id": "sag",
                "path": "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather",
                "args": {
                    "min_clients": n_clients,
                    "num_rounds": 1,
                    "wait_time_after_min_received": 0,
                    "aggregator_id": "aggregator",
                    "persistor_id": "persistor",
                    "shareable_generator_id": "shareable_generator",
                    "train_task_name": "train",
                    "train_timeout": 0,
                },
            }
        ],
        "components": [
            {"id": "persistor", "path": "nvflare.app_common.np.np_model_persistor.NPModelPersistor"},
            {
                "id": "shareable_generator",
                "path": "nvflare.app_common.shareablegenerators.full_model_shareable_generator.FullModelShareableGenerator",
            },
            {
                "id": "aggregator",
                "path": "nvflare.app_common.aggregators.intime_accumulate_model_aggregator.InTimeAccumulateWeightedAggregator",
                "args": {"expected_data_kind": "WEIGHTS"},
            },
        ],
    }
    client = {
        "format_version": 2,
        "executors": [
            {
                "tasks": ["train"],
                "executor": {
                    "path": "nvflare.app_common.np.np_trainer.NPTrainer",
                    "args": {"sleep_time": train_seconds},
                },
            }
        ],
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    (config / "config_fed_server.json").write_text(json.dumps(server, indent=2))
    (config / "config_fed_client.json").write_text(json.dumps(client, indent=2))
    return folder


def _store_only_engine(store):
    """A ServerEngineSpec whose only working method returns the job store."""
    from nvflare.apis.server_engine_spec import ServerEngineSpec

    def unsupported(self, *args, **kwargs):
        raise NotImplementedError("test engine: only get_component('job_store') works")

    methods = {m: unsupported for m in ServerEngineSpec.__abstractmethods__}
    methods["get_component"] = lambda self, cid: store if cid == "job_store" else None
    return type("_StoreOnlyEngine", (ServerEngineSpec,), methods)()


class JobStore:
    """The running system's job store, through the real job manager and storage classes."""

    def __init__(self, jobs_storage):
        from nvflare.apis.fl_constant import ReservedKey
        from nvflare.apis.fl_context import FLContext
        from nvflare.apis.impl.job_def_manager import SimpleJobDefManager
        from nvflare.app_common.storages.filesystem_storage import FilesystemStorage

        self.store = FilesystemStorage()
        self.manager = SimpleJobDefManager(uri_root=str(jobs_storage))
        self.fl_ctx = FLContext()
        self.fl_ctx.set_prop(ReservedKey.ENGINE, _store_only_engine(self.store), private=True, sticky=False)

    def create_job_object(self, job_id: str, data: bytes = b"job", meta: dict = None):
        """A bare job object (data + meta) laid out as the job manager does, for store-only tests."""
        self.store.create_object(self.manager.job_uri(job_id), data, meta or {"job_id": job_id}, False)

    def put(
        self, job_id: str, component: str, data, record: bool = True, file_name=None, model_format=None, move=False
    ) -> dict:
        """Store ``data`` (bytes or a file path, copied) as ``component``; return its record.

        With record=False the component is stored like a client log (no record), so the
        server measures sha256/size when a download starts. move=True moves the file at
        ``data`` into the store instead of copying it (multi-GB files in benchmarks).
        """
        import os
        import shutil
        import tempfile

        from nvflare.apis.utils.component_records import make_record, save_record

        data_type, name = component.split("_", 1)
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, file_name or name)
            if isinstance(data, (bytes, bytearray)):
                Path(src).write_bytes(data)
            elif move:
                os.rename(data, src)  # same file system (the bench's temp folder)
            else:
                shutil.copyfile(data, src)  # set_client_data moves a path: give it a copy
            rec = make_record(src, file_name=file_name, model_format=model_format)
            self.manager.set_client_data(job_id, src, name, data_type, self.fl_ctx)
        if record:
            save_record(self.manager, job_id, component, rec, self.fl_ctx)
        return rec

    def meta(self, job_id: str) -> dict:
        return self.manager.get_job(job_id, self.fl_ctx).meta


def finished_job_with_component(system, folder, component: str, data: bytes) -> str:
    """A numpy job run to FINISHED:COMPLETED on ``system``, then ``data`` stored as ``component``."""
    job_id, meta = system.submit_and_wait(write_numpy_job(folder))
    assert meta["status"] == "FINISHED:COMPLETED", meta
    JobStore(system.jobs_storage).put(job_id, component, data)
    return job_id
