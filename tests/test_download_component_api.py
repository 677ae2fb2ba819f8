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
"""download_job_component / list_job_component_info through the FLARE API, on the real
shared POC system.

Behaviour tests for the patches
admin-commands-download-job-component-and-list-job-component-info-names.patch,
server-commands-register-the-job-component-command-module.patch,
file-transfer-client-pull-component-handler-for-download-job-component.patch,
flare-api-spec-download-job-component-and-list-job-component-info.patch and
flare-api-session-download-job-component-and-list-job-component-info.patch:
without any of them the command or the Session methods do not exist and every test
here fails. The stored MODEL_ components rely on
storage-model-data-type-and-a-strict-component-name-rule.patch (MODEL data type).
"""

import hashlib
import os

import pytest
import torch
from job_components import JobStore, write_numpy_job

pytestmark = pytest.mark.system


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def model_job(flare_system, tmp_path_factory):
    """A finished job whose store holds a torch MODEL_global_model with its record."""
    tmp = tmp_path_factory.mktemp("model_job")
    job_id, meta = flare_system.submit_and_wait(write_numpy_job(tmp / "job"))
    assert meta["status"] == "FINISHED:COMPLETED", meta
    model_file = tmp / "FL_global_model.pt"
    torch.save({"weight": torch.arange(12.0).reshape(3, 4), "bias": torch.ones(3)}, model_file)
    store = JobStore(flare_system.jobs_storage)
    record = store.put(job_id, "MODEL_global_model", str(model_file), file_name="FL_global_model.pt", model_format="pytorch")
    return job_id, record, store


def test_download_model_verifies_and_loads(flare_system, model_job, tmp_path):
    job_id, record, _ = model_job
    stored = flare_system.job_store_dir(job_id) / "MODEL_global_model"
    with flare_system.session() as sess:
        path = sess.download_job_component(job_id, "MODEL_global_model", str(tmp_path / "out"))
    assert path == str(tmp_path / "out" / "MODEL_global_model")
    assert sha256(path) == sha256(stored) == record["sha256"]
    state = torch.load(path, weights_only=True)
    assert torch.equal(state["weight"], torch.arange(12.0).reshape(3, 4))
    assert sorted(os.listdir(tmp_path / "out")) == ["MODEL_global_model"]  # no temp file left


def test_list_component_info(flare_system, model_job):
    job_id, record, _ = model_job
    with flare_system.session() as sess:
        info = sess.list_job_component_info(job_id)
    by_name = {i["name"]: i for i in info}
    model = by_name["MODEL_global_model"]
    assert model["kind"] == "MODEL"
    assert model["size"] == record["size"]
    assert model["sha256"] == record["sha256"]
    assert model["file_name"] == "FL_global_model.pt"
    assert model["format"] == "pytorch"
