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
import io
import os
import time
import zipfile

import pytest
import torch
from job_components import MEMBER, JobStore, sha256, write_numpy_job

from nvflare.apis.utils.component_records import make_record, save_record
from nvflare.fuel.flare_api.api_spec import (
    AuthorizationError,
    InternalError,
    InvalidArgumentError,
    JobNotDone,
    JobNotFound,
)
from nvflare.fuel.flare_api.component_download import ComponentNotFound

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def model_job(flare_system, tmp_path_factory):
    """A finished job whose store holds a torch MODEL_global_model with its record."""
    tmp = tmp_path_factory.mktemp("model_job")
    job_id, meta = flare_system.submit_and_wait(write_numpy_job(tmp / "job"))
    assert meta["status"] == "FINISHED:COMPLETED", meta
    model_file = tmp / "FL_global_model.pt"
    torch.save({"weight": torch.arange(12.0).reshape(3, 4), "bias": torch.ones(3)}, model_file)
    store = JobStore(flare_system.jobs_storage)
    record = store.put(
        job_id, "MODEL_global_model", str(model_file), file_name="FL_global_model.pt", model_format="pytorch"
    )
    store.put(job_id, "LOG_server", b"log line\n" * 1000, record=False)  # like a client log: no record
    store.put(job_id, "MODEL_bundle.zip", zip_bytes())  # a real zip, to show it is never unzipped
    return job_id, record, store


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("inside.txt", "zipped")
    return buf.getvalue()


NAME_RULE = (
    "a component is data, meta, workspace or <TYPE>_<name> with TYPE one of ERRORLOG, LOG, MODEL and <name> "
    "made of letters, digits, '.', '-' and '_'"
)


def test_download_model_verifies_and_loads(flare_system, model_job, tmp_path):
    job_id, record, _ = model_job
    stored = flare_system.job_store_dir(job_id) / "MODEL_global_model"
    with flare_system.session() as sess:
        path = sess.download_job_component(job_id, "MODEL_global_model", str(tmp_path / "out"))
    assert path == str(tmp_path / "out" / "MODEL_global_model.pt")  # the original file's extension
    assert sha256(path) == sha256(stored) == record["sha256"]
    state = torch.load(path, weights_only=True)
    assert torch.equal(state["weight"], torch.arange(12.0).reshape(3, 4))
    assert sorted(os.listdir(tmp_path / "out")) == ["MODEL_global_model.pt"]  # no temp file left


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
    assert model["download_name"] == "MODEL_global_model.pt"


def test_default_destination_and_no_overwrite(flare_system, model_job):
    job_id, record, _ = model_job
    folder = flare_system.transfer_dir() / "components" / job_id
    with flare_system.session() as sess:
        first = sess.download_job_component(job_id, "MODEL_global_model")
        again = sess.download_job_component(job_id, "MODEL_global_model")  # the same bytes: already there
        with open(first, "r+b") as f:  # the user changed it: never replaced
            f.write(b"mine")
        second = sess.download_job_component(job_id, "MODEL_global_model")
    assert first == again == str(folder / "MODEL_global_model.pt")
    assert second == str(folder / "MODEL_global_model__1.pt")  # upstream's __N, before the extension
    assert sha256(second) == record["sha256"] and open(first, "rb").read(4) == b"mine"
    assert sorted(os.listdir(folder)) == ["MODEL_global_model.pt", "MODEL_global_model__1.pt"]  # no partial file


def test_component_without_record_is_measured_by_the_server(flare_system, model_job, tmp_path):
    job_id, _, _ = model_job
    with flare_system.session() as sess:
        path = sess.download_job_component(job_id, "LOG_server", str(tmp_path))
        info = {i["name"]: i for i in sess.list_job_component_info(job_id)}
    assert open(path, "rb").read() == b"log line\n" * 1000
    # no record: no sha256, and the file keeps the bare component name
    assert info["LOG_server"] == {
        "name": "LOG_server",
        "kind": "LOG",
        "size": 9000,
        "download_name": "LOG_server",
        "signed_by": "",
    }
    assert os.path.basename(path) == "LOG_server"


def test_zip_named_component_stays_a_file(flare_system, model_job, tmp_path):
    job_id, _, store = model_job
    data = (flare_system.job_store_dir(job_id) / "MODEL_bundle.zip").read_bytes()
    with flare_system.session() as sess:
        path = sess.download_job_component(job_id, "MODEL_bundle.zip", str(tmp_path))
    assert os.path.isfile(path) and path.endswith("MODEL_bundle.zip")
    assert open(path, "rb").read() == data
    assert zipfile.ZipFile(path).read("inside.txt") == b"zipped"
    assert os.listdir(tmp_path) == ["MODEL_bundle.zip"]  # not unzipped next to it either


def test_verification_failure_keeps_no_file(flare_system, model_job, tmp_path):
    """A record that does not match the stored bytes: the client refuses the file."""
    job_id, _, store = model_job
    store.put(job_id, "MODEL_tampered", b"A" * 4096)
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"B" * 4096)
    bad_record = make_record(str(wrong))
    save_record(store.manager, job_id, "MODEL_tampered", bad_record, store.fl_ctx)
    good_sha = hashlib.sha256(b"A" * 4096).hexdigest()
    out = tmp_path / "out"
    with flare_system.session() as sess:
        with pytest.raises(RuntimeError) as e:
            sess.download_job_component(job_id, "MODEL_tampered", str(out))
    assert str(e.value) == (
        "runtime error encountered: APIStatus.ERROR_RUNTIME: download of MODEL_tampered failed verification: "
        f"received 4096 bytes with sha256 {good_sha}, the server recorded 4096 bytes with sha256 "
        f"{bad_record['sha256']}; no file was kept"
    )
    assert os.listdir(out) == []


def test_size_overrun_stops_the_transfer(flare_system, model_job, tmp_path):
    """More bytes stored than recorded: the receiver refuses before any byte moves."""
    job_id, _, store = model_job
    store.put(job_id, "MODEL_grown", b"C" * 100_000)
    save_record(store.manager, job_id, "MODEL_grown", {"sha256": "0" * 64, "size": 10, "file_name": "x"}, store.fl_ctx)
    with flare_system.session() as sess:
        with pytest.raises(RuntimeError) as e:
            sess.download_job_component(job_id, "MODEL_grown", str(tmp_path))
    assert str(e.value) == (
        "runtime error encountered: APIStatus.ERROR_RUNTIME: download of MODEL_grown failed verification: the "
        "server holds 100000 bytes for it but recorded 10; no file was kept"
    )
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "job_id, component, exc, message",
    [
        ("not-a-job", "MODEL_global_model", JobNotFound, "no such job: not-a-job"),
        (
            "0b5b8c1e-94b4-4a4c-9f7e-3d7e8a1c2b6f",
            "MODEL_global_model",
            JobNotFound,
            "no such job: 0b5b8c1e-94b4-4a4c-9f7e-3d7e8a1c2b6f",
        ),
        (
            "JOB",
            "MODEL_x/../../meta",
            InvalidArgumentError,
            f"invalid component name 'MODEL_x/../../meta': {NAME_RULE}, without '..'",
        ),
        (
            "JOB",
            "model_global_model",
            InvalidArgumentError,
            f"invalid component name 'model_global_model': {NAME_RULE}",
        ),
        ("JOB", "", InvalidArgumentError, f"component name must be a non-empty string: {NAME_RULE}"),
        (
            "JOB",
            "MODEL_missing",
            ComponentNotFound,
            "component 'MODEL_missing' not found in job JOB; the job has: LISTED",
        ),
        (
            "JOB",
            "workspace",
            InternalError,
            "syntax error: component 'workspace' is part of every job: download it with download_job",
        ),
    ],
)
def test_api_errors(flare_system, model_job, job_id, component, exc, message, tmp_path):
    real_job = model_job[0]
    job_id = job_id.replace("JOB", real_job)
    message = message.replace("JOB", real_job)
    with flare_system.session() as sess:
        listed = {i["name"] for i in sess.list_job_component_info(real_job)}
        assert {"LOG_server", "MODEL_bundle.zip", "MODEL_global_model"} <= listed
        message = message.replace("LISTED", ", ".join(sorted(listed)))  # what the job holds now
        with pytest.raises(exc) as e:
            sess.download_job_component(job_id, component, str(tmp_path))
    assert str(e.value) == message
    assert os.listdir(tmp_path) == []


def test_server_checks_the_name_too(flare_system, model_job):
    """A client that skips the local check still meets the same rule on the server."""
    job_id = model_job[0]
    with flare_system.session() as sess:
        result = sess.api.server_execute(f"download_job_component {job_id} MODEL_x/../../meta")
    assert result["meta"]["status"] == "syntax_error"
    assert result["meta"]["info"] == f"invalid component name 'MODEL_x/../../meta': {NAME_RULE}, without '..'"


def test_not_authorized(flare_system, model_job, tmp_path):
    job_id = model_job[0]
    with flare_system.session(MEMBER) as sess:
        with pytest.raises(AuthorizationError) as e:
            sess.download_job_component(job_id, "MODEL_global_model", str(tmp_path))
    assert str(e.value) == (
        f"user not authorized for the action 'download_job_component {job_id} MODEL_global_model "
        f"{tmp_path}: user '{MEMBER}' is not authorized for 'download_job_component''"
    )
    assert os.listdir(tmp_path) == []


def test_works_while_the_job_runs(flare_system, tmp_path):
    """Unlike download_job, the component download does not wait for the job to finish."""
    with flare_system.session() as sess:
        job_id = sess.submit_job(str(write_numpy_job(tmp_path / "job", name="slow-np", train_seconds=120)))
        try:
            deadline = time.time() + 120
            while sess.get_job_meta(job_id)["status"] != "RUNNING":
                assert time.time() < deadline, "job did not start"
                time.sleep(0.5)
            JobStore(flare_system.jobs_storage).put(job_id, "MODEL_checkpoint", b"weights" * 100)
            path = sess.download_job_component(job_id, "MODEL_checkpoint", str(tmp_path / "out"))
            assert open(path, "rb").read() == b"weights" * 100
            assert sess.get_job_meta(job_id)["status"] == "RUNNING"
            with pytest.raises(JobNotDone):
                sess.download_job_result(job_id)
        finally:
            sess.abort_job(job_id)


def test_upstream_downloads_still_work(flare_system, model_job):
    """download_job_components and download_job are untouched (MODEL_ components included)."""
    job_id, record, _ = model_job
    with flare_system.session() as sess:
        comps = sess.download_job_components(job_id)
        result = sess.download_job_result(job_id)
    assert sha256(os.path.join(comps, "MODEL_global_model")) == record["sha256"]
    # upstream unzips by extension (MODEL_bundle.zip -> MODEL_bundle/); download_job_component does not
    assert os.path.isfile(os.path.join(comps, "MODEL_bundle", "inside.txt"))
    assert sorted(os.listdir(result)) == ["job", "meta.json", "workspace"]


def test_errorlog_workaround_model_downloads_with_the_new_command(flare_system, model_job, tmp_path):
    """Migration: a model stored by the old ERRORLOG workaround (set_client_data(...,
    data_type="ERRORLOG"), no record) is fetched alone, verified and loadable."""
    job_id, _, store = model_job
    model_file = tmp_path / "FL_global_model.pt"
    torch.save({"w": torch.eye(4)}, model_file)
    store.put(job_id, "ERRORLOG_global_model", str(model_file), record=False)
    with flare_system.session() as sess:
        info = {c["name"]: c for c in sess.list_job_component_info(job_id)}
        assert info["ERRORLOG_global_model"]["kind"] == "ERRORLOG"
        assert info["ERRORLOG_global_model"]["size"] == model_file.stat().st_size
        path = sess.download_job_component(job_id, "ERRORLOG_global_model", destination=str(tmp_path / "dl"))
    assert path == str(tmp_path / "dl" / "ERRORLOG_global_model")
    assert sha256(path) == sha256(model_file)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.eye(4))


@pytest.mark.parametrize(
    "recorded_name, expected",
    [
        ("tf_model.weights.h5", "MODEL_named.weights.h5"),
        ("../../../../tmp/evil.weights.h5/..", "MODEL_named"),
        ("x/../../.bashrc", "MODEL_named"),
        ("m.p\x00t", "MODEL_named"),
        ("m.\nsh", "MODEL_named"),
        ("." * 300, "MODEL_named"),
        ("m." + "x" * 300, "MODEL_named"),
        ("m.pt;touch pwned", "MODEL_named"),
        ("C:\\models\\best.pt", "MODEL_named.pt"),
    ],
)
def test_recorded_file_name_gives_only_a_safe_extension(flare_system, model_job, tmp_path, recorded_name, expected):
    """Whatever file name a record carries, the API writes <component><plain extension> in the destination."""
    job_id, _, store = model_job
    store.put(job_id, "MODEL_named", b"named model")
    rec = make_record(str(flare_system.job_store_dir(job_id) / "MODEL_named"), file_name=recorded_name)
    save_record(store.manager, job_id, "MODEL_named", rec, store.fl_ctx)
    dest = tmp_path / "dest"
    with flare_system.session() as sess:
        path = sess.download_job_component(job_id, "MODEL_named", str(dest))
        row = {c["name"]: c for c in sess.list_job_component_info(job_id)}["MODEL_named"]
    assert path == str(dest / expected)
    assert row["download_name"] == expected and row["file_name"] == recorded_name
    assert os.listdir(tmp_path) == ["dest"] and os.listdir(dest) == [expected]
    assert open(path, "rb").read() == b"named model"
