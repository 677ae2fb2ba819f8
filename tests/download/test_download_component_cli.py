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
"""``nvflare job download <job_id> --component NAME`` against the real shared system.

Behaviour test for job-cli-nvflare-job-download-component.patch: without it the CLI
rejects --component ("unrecognized arguments") and every test here fails.
"""

import hashlib
import json

import pytest
from job_components import JobStore, write_numpy_job

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def cli_job(flare_system, tmp_path_factory):
    job_id, _ = flare_system.submit_and_wait(write_numpy_job(tmp_path_factory.mktemp("cli") / "job"))
    JobStore(flare_system.jobs_storage).put(job_id, "MODEL_global_model", b"global weights")
    return job_id


def cli(flare_system, *args, fmt=None):
    pre = ["--format", fmt] if fmt else []
    return flare_system.run_nvflare(
        *pre, "job", "download", *args, "--startup-kit", str(flare_system.kit()), check=False, timeout=180
    )


def test_download_then_refuse_then_force(flare_system, cli_job, tmp_path):
    target = tmp_path / "components" / cli_job / "MODEL_global_model"
    first = cli(flare_system, cli_job, "--component", "MODEL_global_model", "-o", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert f"Component MODEL_global_model downloaded to: {target}" in first.stdout
    assert target.read_bytes() == b"global weights"

    target.write_bytes(b"local edits")
    again = cli(flare_system, cli_job, "--component", "MODEL_global_model", "-o", str(tmp_path))
    assert again.returncode == 4
    assert f"Invalid arguments. \u2014 download destination already exists: {target}" in again.stderr
    assert target.read_bytes() == b"local edits"

    forced = cli(flare_system, cli_job, "--component", "MODEL_global_model", "-o", str(tmp_path), "--force")
    assert forced.returncode == 0, forced.stderr
    assert target.read_bytes() == b"global weights"
    assert sorted(p.name for p in target.parent.iterdir()) == ["MODEL_global_model"]

    same = cli(flare_system, cli_job, "--component", "MODEL_global_model", "-o", str(tmp_path))  # the very bytes
    assert same.returncode == 0, same.stderr
    assert (
        f"Component MODEL_global_model is already downloaded: {target} (sha256 verified; nothing transferred)"
        in same.stdout
    )
    assert sorted(p.name for p in target.parent.iterdir()) == ["MODEL_global_model"]


def test_json_output(flare_system, cli_job, tmp_path):
    out = cli(flare_system, cli_job, "--component", "MODEL_global_model", "-o", str(tmp_path), fmt="json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])["data"]
    path = tmp_path / "components" / cli_job / "MODEL_global_model"
    assert {k: data[k] for k in ("job_id", "component", "path")} == {
        "job_id": cli_job,
        "component": "MODEL_global_model",
        "path": str(path),
    }
    with flare_system.session() as sess:  # the CLI shows the row the API and the console list
        listed = {r["name"]: r for r in sess.list_job_component_info(cli_job)}
    assert data["info"] == listed["MODEL_global_model"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(b"global weights").hexdigest()


def test_cli_errors(flare_system, cli_job, tmp_path):
    missing = cli(flare_system, cli_job, "--component", "MODEL_nope", "-o", str(tmp_path))
    assert missing.returncode == 1
    assert missing.stderr.splitlines()[0] == (
        f"component 'MODEL_nope' not found in job {cli_job}; the job has: MODEL_global_model"
    )
    assert "Code: COMPONENT_NOT_FOUND (exit 1)" in missing.stderr
    bad = cli(flare_system, cli_job, "--component", "../x", "-o", str(tmp_path))
    assert bad.returncode == 4
    assert bad.stderr.splitlines()[0] == (
        "invalid component name '../x': a component is data, meta, workspace or <TYPE>_<name> with TYPE one of "
        "ERRORLOG, LOG, MODEL and <name> made of letters, digits, '.', '-' and '_'"
    )
    unknown = cli(flare_system, "0b5b8c1e-94b4-4a4c-9f7e-3d7e8a1c2b6f", "--component", "MODEL_x", "-o", str(tmp_path))
    assert unknown.returncode == 1
    assert "Job '0b5b8c1e-94b4-4a4c-9f7e-3d7e8a1c2b6f' does not exist." in unknown.stderr
    assert list(tmp_path.iterdir()) == []


def test_keras_weights_keep_both_extensions_then_refuse_then_force(flare_system, cli_job, tmp_path):
    """A record naming tf_model.weights.h5: the file is MODEL_keras.weights.h5 (Keras 3 needs both parts)."""
    JobStore(flare_system.jobs_storage).put(
        cli_job, "MODEL_keras", b"keras weights", file_name="tf_model.weights.h5", model_format="TensorFlow"
    )
    target = tmp_path / "components" / cli_job / "MODEL_keras.weights.h5"
    first = cli(flare_system, cli_job, "--component", "MODEL_keras", "-o", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert f"Component MODEL_keras downloaded to: {target}" in first.stdout
    assert "original file tf_model.weights.h5; format TensorFlow; 13 bytes, sha256 " in first.stdout
    assert target.read_bytes() == b"keras weights"
    target.write_bytes(b"local edits")
    again = cli(flare_system, cli_job, "--component", "MODEL_keras", "-o", str(tmp_path))
    assert again.returncode == 4
    assert f"download destination already exists: {target}" in again.stderr
    assert target.read_bytes() == b"local edits"
    forced = cli(flare_system, cli_job, "--component", "MODEL_keras", "-o", str(tmp_path), "--force")
    assert forced.returncode == 0, forced.stderr
    assert target.read_bytes() == b"keras weights"
    assert sorted(p.name for p in target.parent.iterdir()) == ["MODEL_keras.weights.h5"]
