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
"""No surprise folders: a component download never moves where download_job of the same job lands.

Layout (docs/download-component.md): download_job (upstream) puts the workspace in
``transfer/<job_id>/``; download_job_component puts components in
``transfer/components/<job_id>/``; the CLI does the same under ``-o DIR``. Both orders,
in the real console, the FLARE API and the CLI.
"""

import pytest
from admin_console import AdminConsole
from job_components import finished_job_with_component

pytestmark = pytest.mark.system


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def job_id(flare_system, tmp_path):
    return finished_job_with_component(flare_system, tmp_path / "job", "MODEL_global_model", b"the weights")


def test_console_component_then_download_job(flare_system, job_id):
    transfer = flare_system.transfer_dir()
    with AdminConsole(flare_system.kit(), env=flare_system.env) as c:
        out = c.run(f"download_job_component {job_id} MODEL_global_model")
        assert f"to {transfer / 'components' / job_id / 'MODEL_global_model'} (" in out, out
        c.run(f"download_job {job_id}", timeout=180)
    assert (transfer / job_id / "meta.json").is_file() or (transfer / job_id).is_dir()
    assert not (transfer / f"{job_id}__1").exists()
    assert (transfer / "components" / job_id / "MODEL_global_model").read_bytes() == b"the weights"


def test_console_download_job_then_component(flare_system, job_id):
    transfer = flare_system.transfer_dir()
    with AdminConsole(flare_system.kit(), env=flare_system.env) as c:
        c.run(f"download_job {job_id}", timeout=180)
        workspace = tree(transfer / job_id)
        assert workspace
        c.run(f"download_job_component {job_id} MODEL_global_model")
    assert tree(transfer / job_id) == workspace  # nothing added to the workspace download
    assert (transfer / "components" / job_id / "MODEL_global_model").read_bytes() == b"the weights"


def test_api_both_orders(flare_system, tmp_path):
    transfer = flare_system.transfer_dir()
    first = finished_job_with_component(flare_system, tmp_path / "a", "MODEL_global_model", b"A")
    second = finished_job_with_component(flare_system, tmp_path / "b", "MODEL_global_model", b"B")
    with flare_system.session() as sess:
        a_model = sess.download_job_component(first, "MODEL_global_model")
        a_job = sess.download_job_result(first)
        b_job = sess.download_job_result(second)
        b_model = sess.download_job_component(second, "MODEL_global_model")
    assert a_job == str(transfer / first) and b_job == str(transfer / second)
    assert a_model == str(transfer / "components" / first / "MODEL_global_model")
    assert b_model == str(transfer / "components" / second / "MODEL_global_model")


def test_cli_both_orders(flare_system, job_id, tmp_path):
    def cli(*args):
        done = flare_system.run_nvflare(
            "job",
            "download",
            job_id,
            "-o",
            str(tmp_path),
            *args,
            "--startup-kit",
            str(flare_system.kit()),
            check=False,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr

    cli("--component", "MODEL_global_model")
    cli()
    assert (tmp_path / job_id).is_dir() and not (tmp_path / f"{job_id}__1").exists()
    workspace = tree(tmp_path / job_id)
    cli("--component", "MODEL_global_model", "--force")
    assert tree(tmp_path / job_id) == workspace
    assert (tmp_path / "components" / job_id / "MODEL_global_model").read_bytes() == b"the weights"
