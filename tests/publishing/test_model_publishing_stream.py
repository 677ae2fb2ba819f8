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
"""Model publishing when the store must pull the bytes (as with container launchers), and the
opt-in setting that drops published model files from the workspace archive.

A second real POC system, configured through the server's local/resources.json the way an
operator would: model_publish_transfer=stream, model_publish_drop_from_workspace=true.
The models are streamed from the descriptor the job process opened and checked
(run_folder_files), and only files inside the job's run folder are removed.
"""

import hashlib
import json
import os
import zipfile

import pytest
from flare_system import FlareSystem
from model_jobs import BEST, GLOBAL, pt_fedavg_job, run_and_catch_finish
from publish_attacks import RAW_OUTCOME, assert_refused_by_store, raw_attack

pytestmark = [pytest.mark.system, pytest.mark.slow]


@pytest.fixture(scope="module")
def streaming_system(tmp_path_factory):
    system = FlareSystem(tmp_path_factory.mktemp("flare_stream"))
    try:
        system.prepare()
        system.set_server_settings(model_publish_transfer="stream", model_publish_drop_from_workspace=True)
        system.start()
        yield system
    finally:
        system.stop()


def test_streamed_models_are_stored_and_dropped_from_workspace(streaming_system, tmp_path):
    job_id, status, components = run_and_catch_finish(streaming_system, pt_fedavg_job(tmp_path))
    assert status == "FINISHED:COMPLETED" and GLOBAL in components and BEST in components, components

    store = streaming_system.job_store_dir(job_id)
    records = json.loads((store / "meta").read_text())["component_records"]
    for component in (GLOBAL, BEST):
        data = (store / component).read_bytes()
        assert records[component]["transfer"] == "stream"
        assert records[component]["sha256"] == hashlib.sha256(data).hexdigest()
        assert records[component]["size"] == len(data)
    with zipfile.ZipFile(store / "workspace") as z:
        names = z.namelist()
    assert not [n for n in names if n.endswith(("FL_global_model.pt", "best_FL_global_model.pt"))], names
    assert [n for n in names if n.endswith("config_fed_server.json")], "workspace archive lost its other content"
    log = streaming_system.console_log.read_text(errors="replace")
    assert f"Published global model 'FL_global_model.pt' of job {job_id} as {GLOBAL} (stream, " in log
    assert "Removed " in log and "from the job workspace: the job store holds it" in log
    for file_name in ("FL_global_model.pt", "best_FL_global_model.pt"):
        run = os.path.realpath(streaming_system.server_dir / job_id)
        removed = f"Removed {run}/app_server/{file_name} from the job workspace: the job store holds it"
        assert removed in log


def test_store_refuses_raw_requests_when_it_receives_by_streaming(streaming_system, tmp_path, reliability):
    """With model_publish_transfer=stream the store still checks a named path first: a path outside
    the job's run folder is refused, not answered "not visible" (which would invite a stream)."""
    job_id, expected = raw_attack(streaming_system, tmp_path)
    assert_refused_by_store(streaming_system, job_id, expected)
    reliability.record("P4", RAW_OUTCOME)
