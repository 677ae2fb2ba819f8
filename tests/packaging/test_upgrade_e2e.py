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
"""The whole upgrade of docs/upgrade.md on a real system, starting from upstream NVFlare 2.9.0.

Provisioned and run by upstream 2.9.0 (its own venv): one job finishes, without a model
component. Then the checklist: stop, switch the server to the fork, ``nvflare fork enable``
on the server kit, restart (clients stay on upstream 2.9.0), backfill the old job, run a
new job. Both jobs' models are downloaded in the real fork console and compared with their
workspaces; an upstream console is checked for the exact messages the docs quote and for
the documented fallback (``download_job_components``).
"""

import io
import os
import zipfile

import numpy as np
import pytest
from admin_console import AdminConsole
from flare_system import NVFLARE, FlareSystem
from job_components import write_numpy_job
from upstream_flare import upstream_nvflare

pytestmark = pytest.mark.system

GLOBAL = "MODEL_global_model"


def workspace_member(system, job_id, name) -> bytes:
    with zipfile.ZipFile(system.job_store_dir(job_id) / "workspace") as z:
        return z.read(name)


def upstream_console(system, upstream):
    """fl_admin of the upstream venv (its python), on the project admin's kit."""
    python = os.path.join(os.path.dirname(upstream), "python")
    return AdminConsole(system.kit(), env=system.env, python=python)


@pytest.fixture(scope="module")
def upgraded(upstream_wheel, tmp_path_factory):
    upstream = upstream_nvflare(upstream_wheel)
    root = tmp_path_factory.mktemp("upgrade")
    system = FlareSystem(root / "system")
    system.nvflare = upstream
    try:
        system.prepare()
        system.run_nvflare("poc", "start", "--no-wait")
        system.started = True
        system.wait_until_up(300)
        old_job, meta = system.submit_and_wait(write_numpy_job(root / "old_job"))
        assert meta["status"] == "FINISHED:COMPLETED", meta
        system.stop()

        # 1-3: the server runs the fork, its kit enabled by the tool; the clients stay on 2.9.0
        system.nvflare = NVFLARE
        enabled = system.run_nvflare("fork", "enable", str(system.server_dir))
        assert "added component job_model_store" in enabled.stdout, enabled.stdout
        system.run_nvflare("poc", "start", "-p", "server", "--no-wait")
        system.started = True
        system.nvflare = upstream
        for i in range(1, system.n_clients + 1):
            system.run_nvflare("poc", "start", "-p", f"site-{i}", "--no-wait")
        system.nvflare = NVFLARE
        system.wait_until_up(300)
        yield system, upstream, old_job, root
    finally:
        system.nvflare = NVFLARE
        system.stop()


def test_upgrade_backfill_and_download_both_jobs(upgraded):
    system, upstream, old_job, root = upgraded
    server_pids = [p for p in system.workspace_processes() if "server_train" in " ".join(p.cmdline())]
    assert server_pids
    # step 5 of the checklist: what the server log says once the kit is enabled
    log = (system.server_dir / "log.txt").read_text(errors="replace")
    assert "Job model store ready: publishes MODEL_global_model and MODEL_best_global_model (" in log
    new_job, meta = system.submit_and_wait(write_numpy_job(root / "new_job"))
    assert meta["status"] == "FINISHED:COMPLETED", meta

    with system.session() as sess:
        assert not [c for c in sess.list_job_components(old_job) if c.startswith("MODEL_")]
        assert GLOBAL in sess.list_job_components(new_job)
        result = sess.backfill_job_model(old_job)
    assert result["outcome"] == "backfilled", result

    dest = root / "downloads"
    with AdminConsole(system.kit(), env=system.env) as c:
        for job in (old_job, new_job):
            out = c.run(f"download_job_component {job} {GLOBAL} {dest / job}", timeout=120)
            assert "sha256 verified" in out and "signature verified (server " in out, out  # kits from 2.9.0 sign too
    # downloads keep the original extension (component_file_names)
    old_model = (dest / old_job / f"{GLOBAL}.npy").read_bytes()
    assert old_model == workspace_member(system, old_job, "models/server.npy")
    # the live publisher's numpy fallback: the FL context's last global model, same weights
    new_model = np.load(dest / new_job / f"{GLOBAL}.npz")
    workspace_model = np.load(io.BytesIO(workspace_member(system, new_job, "models/server.npy")))
    (weights,) = [new_model[k] for k in new_model.files]
    np.testing.assert_array_equal(weights, workspace_model)


def test_upstream_console_messages_and_fallback(upgraded):
    system, upstream, old_job, root = upgraded
    with upstream_console(system, upstream) as c:
        login = c.transcript
        backfill = c.run(f"backfill_job_model {old_job}")  # a server-side command: works here too
        comps = c.run(f"download_job_components {old_job}", timeout=180)
        single = c.run(f"download_job_component {old_job} {GLOBAL}")
    assert "\nno cmd handler found for file_transfer.pull_component\n" in login, login
    assert single == f"Undefined command {'download_job_component'}", single
    first = backfill.splitlines()[0]
    assert first.startswith(f"job {old_job}: backfilled: stored {GLOBAL} from models/server.npy (") or (
        first == f"job {old_job}: skipped: already has {GLOBAL}"  # the other test backfilled it first
    ), backfill
    # the documented fallback: every extra component, the model included, in transfer/<job_id>/
    folder = system.transfer_dir() / old_job
    assert f"downloaded {GLOBAL} (" in comps and f"content downloaded to {folder}" in comps, comps
    assert (folder / GLOBAL).read_bytes() == workspace_member(system, old_job, "models/server.npy")
