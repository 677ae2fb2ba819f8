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
"""Config-only jobs (upstream's default allow-list only) that aim components at files outside the job.

- ``numpy_victim_job``: a one-round numpy job whose model has distinctive weights (the
  trainer's delta); its NPFileModelPersistor saves it as last_global_model.npy, which the
  server stores as MODEL_global_model (a plain .npy file NPModelLocator can load).
- ``cse_locator_job``: CrossSiteModelEval + NPModelLocator whose model_name is any path:
  the server loads it, saves it in the job's run folder (cross_site_val/model_shareables/
  SRV_server, which download_job returns) and sends it to every site for validation.
- ``client_persistor_job``: a one-round numpy job whose clients also configure an
  NPFileModelPersistor reading (and writing) files at the client.
"""

import json
from pathlib import Path

import numpy as np
from job_components import write_numpy_job

LOCATOR = "nvflare.app_common.np.np_model_locator.NPModelLocator"
CSE = "nvflare.app_common.workflows.cross_site_model_eval.CrossSiteModelEval"
NP_TRAINER = "nvflare.app_common.np.np_trainer.NPTrainer"
NP_VALIDATOR = "nvflare.app_common.np.np_validator.NPValidator"
JSON_GENERATOR = "nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator"
NP_FILE_PERSISTOR = "nvflare.app_common.ccwf.comps.np_file_model_persistor.NPFileModelPersistor"
# the rule every refusal of the job path guard ends with (persistor_path_guard.py)
GUARD_RULE = (
    "a job's components may write files only inside the job's own run folder, and read them only there or in a "
    "directory of the site setting job_read_allowed_dirs (model_persistor_allowed_dirs), never in the site's "
    "startup/, local/, other jobs' folders or the job store"
)
VICTIM_DELTA = 0.3125  # the victim's model: NPModelPersistor's initial [[1..9]] + this, after one round


def victim_weights() -> np.ndarray:
    return np.arange(1, 10, dtype=np.float32).reshape(3, 3) + np.float32(VICTIM_DELTA)


def _config(job: Path, side: str) -> Path:
    return job / "app" / "config" / f"config_fed_{side}.json"


def numpy_victim_job(root: Path, name: str = "victim", n_clients: int = 2) -> Path:
    job = write_numpy_job(Path(root) / name, name, n_clients=n_clients)
    client = json.loads(_config(job, "client").read_text())
    client["executors"][0]["executor"]["args"]["delta"] = VICTIM_DELTA
    _config(job, "client").write_text(json.dumps(client, indent=2))
    server = json.loads(_config(job, "server").read_text())
    (persistor,) = [c for c in server["components"] if c["id"] == "persistor"]
    persistor["path"] = NP_FILE_PERSISTOR
    _config(job, "server").write_text(json.dumps(server, indent=2))
    return job


def cse_locator_job(root: Path, name: str, model_name, n_clients: int = 2, image: str = None) -> Path:
    """CrossSiteModelEval of the server model NPModelLocator(model_name) finds, validated by every site."""
    job = Path(root) / name
    (job / "app" / "config").mkdir(parents=True, exist_ok=True)
    meta = {"name": name, "resource_spec": {}, "min_clients": n_clients, "deploy_map": {"app": ["@ALL"]}}
    if image:
        meta["launcher_spec"] = {"server": {"docker": {"image": image}}}
    server = {
        "format_version": 2,
        "workflows": [
            {
                "id": "cross_site_validate",
                "path": CSE,
                "args": {"model_locator_id": "model_locator", "submit_model_timeout": 30, "validation_timeout": 60},
            }
        ],
        "components": [
            {"id": "model_locator", "path": LOCATOR, "args": {"model_name": model_name}},
            {"id": "json_generator", "path": JSON_GENERATOR},  # cross_site_val/cross_val_results.json
        ],
    }
    client = {
        "format_version": 2,
        "executors": [
            {"tasks": ["train", "submit_model"], "executor": {"path": NP_TRAINER}},
            {"tasks": ["validate"], "executor": {"path": NP_VALIDATOR}},
        ],
    }
    (job / "meta.json").write_text(json.dumps(meta, indent=2))
    _config(job, "server").write_text(json.dumps(server, indent=2))
    _config(job, "client").write_text(json.dumps(client, indent=2))
    return job


def client_persistor_job(root: Path, name: str, persistor_args: dict, n_clients: int = 2) -> Path:
    """A one-round numpy job whose sites' config also builds NPFileModelPersistor(**persistor_args)."""
    job = write_numpy_job(Path(root) / name, name, n_clients=n_clients)
    client = json.loads(_config(job, "client").read_text())
    client["components"] = [{"id": "persistor", "path": NP_FILE_PERSISTOR, "args": persistor_args}]
    _config(job, "client").write_text(json.dumps(client, indent=2))
    return job


def files_holding(folder: Path, data: bytes) -> list:
    """Files under ``folder`` (recursively, zip members not opened) whose bytes contain ``data``."""
    found = []
    for p in Path(folder).rglob("*") if Path(folder).is_dir() else []:
        if p.is_file() and not p.is_symlink() and data in p.read_bytes():
            found.append(str(p))
    return found
