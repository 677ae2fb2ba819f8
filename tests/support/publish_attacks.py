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
"""Jobs that try to make model publishing read, publish or delete files outside their run folder.

- ``pt_config_only_job``: what a lead without custom code can submit when the operator has
  allowed PTFileModelPersistor: its model file names are absolute paths elsewhere. Zero
  rounds, so the persistor never writes those paths (they are only listed in its inventory,
  which upstream does for every existing file).
- ``symlink_job`` (custom code): the run folder holds a symlink to a file inside and one to
  a file outside, and its persistor lists both.
- ``raw_request_job`` (custom code): the job's own server process sends publish requests
  naming files outside its run folder straight to the store, as a hostile job would.
"""

import json
import os
import re
import textwrap
from pathlib import Path

from job_custom import write_custom

PT_PERSISTOR = "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor"
RULE = "only a regular file inside the job's own run folder may be published"


def _write_job(job: Path, name: str, server: dict, client: dict = None, custom: str = None) -> Path:
    (job / "app" / "config").mkdir(parents=True, exist_ok=True)
    meta = {"name": name, "resource_spec": {}, "deploy_map": {"app": ["@ALL"]}, "min_clients": 1}
    (job / "meta.json").write_text(json.dumps(meta))
    client = client or {
        "format_version": 2,
        "executors": [{"tasks": ["train"], "executor": {"path": "nvflare.app_common.np.np_trainer.NPTrainer"}}],
        "components": [],
    }
    (job / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server, indent=2))
    (job / "app" / "config" / "config_fed_client.json").write_text(json.dumps(client, indent=2))
    if custom:
        write_custom(job, "publish_attack", custom)
    return job


def pt_config_only_job(root: Path, name: str, **persistor_args) -> Path:
    """A config-only job (no custom folder): ScatterAndGather with 0 rounds and PTFileModelPersistor(**persistor_args)."""
    server = {
        "format_version": 2,
        "workflows": [
            {
                "id": "sag",
                "path": "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather",
                "args": {
                    "min_clients": 1,
                    "num_rounds": 0,
                    "aggregator_id": "aggregator",
                    "persistor_id": "persistor",
                    "shareable_generator_id": "shareable_generator",
                    "train_task_name": "train",
                },
            }
        ],
        "components": [
            {
                "id": "persistor",
                "path": PT_PERSISTOR,
                "args": {
                    "model": {"path": "torch.nn.Linear", "args": {"in_features": 4, "out_features": 2}},
                    **persistor_args,
                },
            },
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
    job = _write_job(Path(root) / name, name, server)
    assert not (job / "app" / "custom").exists()
    return job


SYMLINK_COMPONENTS = textwrap.dedent(
    '''
    import hashlib
    import os

    from control_flow_only import ControlFlowOnly
    from nvflare.app_common.abstract.model import ModelLearnable
    from nvflare.app_common.abstract.model_persistor import ModelPersistor
    from nvflare.app_common.model_desc import ModelDescriptor

    GLOBAL, BEST = "FL_global_model.pt", "best_FL_global_model.pt"


    def app_dir(fl_ctx):
        return fl_ctx.get_engine().get_workspace().get_app_dir(fl_ctx.get_job_id())


    class MakeSymlinks(ControlFlowOnly):
        """Writes model.bin in the app folder; FL_global_model.pt links to it (inside the run
        folder), best_FL_global_model.pt links to ``outside`` (a file outside it)."""

        def __init__(self, outside):
            super().__init__()
            self.outside = outside

        def control_flow(self, abort_signal, fl_ctx):
            folder = app_dir(fl_ctx)
            data = os.urandom(1 << 16)
            with open(os.path.join(folder, "model.bin"), "wb") as f:
                f.write(data)
            os.symlink(os.path.join(folder, "model.bin"), os.path.join(folder, GLOBAL))
            os.symlink(self.outside, os.path.join(folder, BEST))
            self.log_info(fl_ctx, f"TEST model.bin sha256 {hashlib.sha256(data).hexdigest()}")


    class ListSymlinks(ModelPersistor):
        def load_model(self, fl_ctx):
            return ModelLearnable()

        def save_model(self, model, fl_ctx):
            pass

        def get_model_inventory(self, fl_ctx):
            folder = app_dir(fl_ctx)
            return {n: ModelDescriptor(n, os.path.join(folder, n), "bytes", {}) for n in (GLOBAL, BEST)}
    '''
)


def symlink_job(root: Path, outside: str, name: str = "symlink_models") -> Path:
    server = {
        "format_version": 2,
        "workflows": [{"id": "controller", "path": "publish_attack.MakeSymlinks", "args": {"outside": outside}}],
        "components": [{"id": "persistor", "path": "publish_attack.ListSymlinks", "args": {}}],
    }
    return _write_job(Path(root) / name, name, server, custom=SYMLINK_COMPONENTS)


RAW_REQUESTS = textwrap.dedent(
    '''
    import os

    from control_flow_only import ControlFlowOnly
    from nvflare.app_common.model_publishing.model_publish_defs import KIND_BEST, MODE_LOCAL, Key, file_identity, send_publish_request


    class RawPublishRequests(ControlFlowOnly):
        """Sends the store MODE_LOCAL publish requests for ``paths`` (absolute, or relative to the
        run folder; ``link:<name>=<target>`` first makes a symlink <app folder>/<name> to <target>),
        with the target's real identity, and logs each reply."""

        def __init__(self, paths):
            super().__init__()
            self.paths = paths

        def control_flow(self, abort_signal, fl_ctx):
            engine = fl_ctx.get_engine()
            job_id = fl_ctx.get_job_id()
            run_dir = engine.get_workspace().get_run_dir(job_id)
            for path in self.paths:
                if path.startswith("link:"):
                    name, target = path[len("link:"):].split("=", 1)
                    path = os.path.join(engine.get_workspace().get_app_dir(job_id), name)
                    os.symlink(target, path)
                target = path if os.path.isabs(path) else os.path.join(run_dir, path)
                request = {Key.KIND: KIND_BEST, Key.FILE_NAME: "stolen.pt", Key.FORMAT: "", Key.MODE: MODE_LOCAL,
                           Key.PATH: path, Key.IDENTITY: file_identity(target)}
                reply = send_publish_request(engine.get_cell(), request, 30.0)
                self.log_info(fl_ctx, f"TEST RAW PUBLISH {path!r} REPLY {reply!r}")
    '''
)


def raw_request_job(root: Path, paths: list, name: str = "raw_publish") -> Path:
    server = {
        "format_version": 2,
        "workflows": [{"id": "controller", "path": "publish_attack.RawPublishRequests", "args": {"paths": paths}}],
        "components": [],
    }
    return _write_job(Path(root) / name, name, server, custom=RAW_REQUESTS)


def refusal(path, reason: str) -> str:
    """The text run_folder_files gives for a refused path (the rule's own wording)."""
    return f"{path!r} {reason}: {RULE}"


def outside_refusal(path, real, run_dir) -> str:
    return refusal(path, f"resolves to {str(real)!r}, outside the job's run folder {str(run_dir)!r}")


RAW_OUTCOME = (
    "the store refuses each (absolute path, `../startup/server.key`, a symlink out of the run folder) under "
    "model_publish_transfer auto and stream alike, never answering `not visible`: reply `refused`, server log "
    "`Refused to store a model: job <job>: '<path>' resolves to '<kit>/startup/server.key', outside the job's run "
    "folder '<kit>/<job>': only a regular file inside the job's own run folder may be published`, audit.log "
    "`[U:server_job][A:model_fork.publish_job_model from server.<job>] REFUSED: <same>`; no MODEL_ component"
)


def run_folder(system, job_id) -> str:
    return os.path.realpath(system.server_dir / job_id)


def server_key(system) -> str:
    return os.path.realpath(system.server_dir / "startup" / "server.key")


def log_of(system) -> str:
    return system.console_log.read_text(errors="replace")


def stored_models(system, job_id) -> list:
    return sorted(p.name for p in system.job_store_dir(job_id).iterdir() if p.name.startswith("MODEL_"))


def raw_attack(system, tmp_path):
    """Run raw_request_job on ``system``; (job_id, [(path sent, expected refusal message)])."""
    key = server_key(system)
    job_id, meta = system.submit_and_wait(
        raw_request_job(tmp_path, [key, "../startup/server.key", f"link:evil.pt={key}"])
    )
    assert meta["status"] == "FINISHED:COMPLETED", f"{meta}\n{system.tail_console()}"
    log = log_of(system)
    link = re.search(rf"TEST RAW PUBLISH '(/\S*/{job_id}/app_server/evil\.pt)' REPLY", log)
    assert link, system.tail_console()
    run = run_folder(system, job_id)
    expected = [
        (path, f"job {job_id}: {outside_refusal(path, key, run)}")
        for path in (key, "../startup/server.key", link.group(1))
    ]
    return job_id, expected


def assert_refused_by_store(system, job_id, expected):
    log = log_of(system)
    audit = system.audit_log.read_text(errors="replace")
    for path, message in expected:
        reply = {"status": "refused", "message": message}
        assert f"TEST RAW PUBLISH {path!r} REPLY {reply!r}" in log, system.tail_console()
        assert f"Refused to store a model: {message}" in log
        assert f"[U:server_job][A:model_fork.publish_job_model from server.{job_id}] REFUSED: {message}" in audit
    assert stored_models(system, job_id) == []
