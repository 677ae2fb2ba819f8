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
"""backfill_job_model on a real POC system: jobs that ran without publishing get their
models from their stored workspace, byte for byte; hostile archives and unauthorized
users are refused with the exact message; the batch form is idempotent.

Behaviour tests for server-commands-register-the-model-backfill-command-module.patch
(without it the console and the API answer "Unknown command"),
flare-api-session-backfill-job-model-and-backfill-all-job-models.patch (Session methods)
and job-cli-nvflare-job-backfill-model.patch (``nvflare job backfill-model``).
"""

import hashlib
import json

import numpy as np
import pytest
import torch
from admin_console import AdminConsole
from crafted_zips import absolute_path, bomb, dot_dot, duplicate, persistor_path, symlink
from job_components import MEMBER, ORG_ADMIN, OTHER_ORG_ADMIN, JobStore, write_numpy_job
from model_jobs import BEST, GLOBAL, PUBLISHER, add_server_component, job_meta, pt_fedavg_job, workspace_files

pytestmark = pytest.mark.system

PUBLISHING_OFF = {"id": "model_publisher", "path": PUBLISHER, "args": {"enabled": False}}
NP_MODEL = "models/server.npy"
NP_CONFIG = "app_server/config/config_fed_server.json"


def unpublished_job(system, folder, job_builder=write_numpy_job):
    """A job run to FINISHED:COMPLETED with publishing turned off: it has no MODEL_ component."""
    job = job_builder(folder)
    add_server_component(job, PUBLISHING_OFF)
    job_id, meta = system.submit_and_wait(job)
    assert meta["status"] == "FINISHED:COMPLETED", meta
    with system.session() as sess:
        assert not [c for c in sess.list_job_components(job_id) if c.startswith("MODEL_")]
    return job_id


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_pt_job_backfilled_then_downloaded_byte_for_byte(flare_system, tmp_path):
    job_id = unpublished_job(flare_system, tmp_path, lambda f: pt_fedavg_job(f, "pt_backfill"))
    files = workspace_files(flare_system, job_id)
    final, best = files["app_server/FL_global_model.pt"], files["app_server/best_FL_global_model.pt"]
    with flare_system.session() as sess:
        result = sess.backfill_job_model(job_id)
        assert result["outcome"] == "backfilled", result
        assert result["message"] == (
            f"stored {GLOBAL} from app_server/FL_global_model.pt ({len(final)} bytes, sha256 {sha(final)[:12]}); "
            f"{BEST} from app_server/best_FL_global_model.pt ({len(best)} bytes, sha256 {sha(best)[:12]})"
        )
        records = job_meta(flare_system, job_id)["component_records"]
        statement = json.loads(records[GLOBAL].pop("provenance")["statement"])  # signed like a live model
        assert (statement["backfilled"], statement["sha256"], statement["component"]) == (True, sha(final), GLOBAL)
        assert records[GLOBAL] == {
            "sha256": sha(final),
            "size": len(final),
            "file_name": "FL_global_model.pt",
            "format": "pt_checkpoint",
            "kind": "global",
            "transfer": "backfill",
            "hashed": "store",
            "backfilled": True,
            "source": "workspace:app_server/FL_global_model.pt",
            "block_size": 64 * 1024 * 1024,  # measured in the same pass: a download of it can resume
            "block_sha256": [sha(final)],
        }
        assert records[BEST]["sha256"] == sha(best) and records[BEST]["backfilled"] is True
        got_final = sess.download_job_component(job_id, GLOBAL, str(tmp_path / "dl"))
        got_best = sess.download_job_component(job_id, BEST, str(tmp_path / "dl"))
        again = sess.backfill_job_model(job_id)
    assert open(got_final, "rb").read() == final
    assert open(got_best, "rb").read() == best
    assert set(torch.load(got_final, weights_only=False)["model"]) == {"weight", "bias"}
    assert again["outcome"] == "skipped" and again["message"] == f"already has {GLOBAL}, {BEST}"
    assert "backfill_job_model" in flare_system.audit_log.read_text()


@pytest.fixture(scope="module")
def np_job(flare_system, tmp_path_factory):
    return unpublished_job(flare_system, tmp_path_factory.mktemp("np_backfill") / "job")


HOSTILE = {
    "absolute path": lambda m: absolute_path(m),
    "dot-dot": lambda m: dot_dot(m),
    "symlink": lambda m: symlink(m, NP_MODEL),
    "duplicate": lambda m: duplicate(m, NP_MODEL),
    "zip bomb": lambda m: bomb(m),
    "persistor path outside": lambda m: (
        persistor_path(m, NP_CONFIG, {"model_name": "../../../etc/passwd"}),
        "MODEL_global_model: NPModelPersistor model_dir/model_name 'models/../../../etc/passwd' points outside "
        "the job's workspace",
    ),
    "persistor path absolute": lambda m: (
        persistor_path(m, NP_CONFIG, {"model_dir": "/etc"}),
        "MODEL_global_model: NPModelPersistor model_dir/model_name '/etc/server.npy' is an absolute path, outside "
        "the job's workspace",
    ),
    "not a zip": lambda m: (
        b"PK\x03\x04 but not a zip",
        "workspace archive: not a readable zip archive (File is not a zip file)",
    ),
}


def test_hostile_archives_refused_then_the_real_one_backfills(flare_system, np_job):
    """Each crafted archive written into the job's store entry is refused with its message; nothing is stored."""
    from nvflare.fuel.flare_api.model_backfill import BackfillFailed

    store = JobStore(flare_system.jobs_storage)
    ws = flare_system.job_store_dir(np_job) / "workspace"
    original = ws.read_bytes()
    members = workspace_files(flare_system, np_job)
    seen = {}
    try:
        with flare_system.session() as sess:
            for case, make in HOSTILE.items():
                data, reason = make(members)
                store.store.update_object(store.manager.job_uri(np_job), data, "workspace")
                with pytest.raises(BackfillFailed) as e:
                    sess.backfill_job_model(np_job)
                seen[case] = str(e.value)
                if not reason.startswith(("workspace archive", "MODEL_")):
                    reason = f"workspace archive: {reason}"
                assert str(e.value) == f"job {np_job}: refused: {reason}", case
                assert not [c for c in sess.list_job_components(np_job) if c.startswith("MODEL_")], case
    finally:
        store.store.update_object(store.manager.job_uri(np_job), original, "workspace")
    staging = flare_system.server_dir / ".model_backfill_staging"
    assert not staging.exists() or not list(staging.iterdir())
    with flare_system.session() as sess:
        result = sess.backfill_job_model(np_job)
    assert result["outcome"] == "backfilled", (result, seen)
    stored = (flare_system.job_store_dir(np_job) / GLOBAL).read_bytes()
    assert stored == members[NP_MODEL]
    audit = flare_system.audit_log.read_text()
    assert (
        f"[A:backfill_job_model {np_job}] REFUSED: workspace archive: entry '/etc/cron.d/evil' is an absolute path"
        in audit
    )


def test_console_backfill_and_download(flare_system, tmp_path):
    job_id = unpublished_job(flare_system, tmp_path / "job")
    model = workspace_files(flare_system, job_id)[NP_MODEL]
    with AdminConsole(flare_system.kit(), env=flare_system.env) as c:
        out = c.run(f"backfill_job_model {job_id}").splitlines()[0]  # then the console's "Done [..]"
        assert (
            out
            == f"job {job_id}: backfilled: stored {GLOBAL} from {NP_MODEL} ({len(model)} bytes, sha256 {sha(model)[:12]})"
        )
        dl = c.run(f"download_job_component {job_id} {GLOBAL} {tmp_path / 'dl'}", timeout=120)
    assert "sha256 verified" in dl and "signature verified (server server, project example_project)" in dl, dl
    path = tmp_path / "dl" / f"{GLOBAL}.npy"  # the original file's extension (component_file_names)
    assert path.read_bytes() == model
    np.testing.assert_array_equal(np.load(path), np.load(__import__("io").BytesIO(model)))


@pytest.mark.parametrize("user", [MEMBER, OTHER_ORG_ADMIN])
def test_unauthorized_users_refused_and_audited(flare_system, np_job, user):
    """Refused exactly as download_job of the job would be (the policy's download_job right)."""
    from nvflare.fuel.flare_api.api_spec import AuthorizationError

    expected = f"Authorization Error: user '{user}' is not authorized for 'download_job'"
    with flare_system.session(user) as sess:
        with pytest.raises(AuthorizationError) as e:
            sess.backfill_job_model(np_job)
        assert str(e.value) == f"user not authorized for the action 'backfill_job_model {np_job}: {expected}'"
        with pytest.raises(AuthorizationError) as e:
            sess.backfill_all_job_models()
    role = {MEMBER: "member", OTHER_ORG_ADMIN: "org_admin"}[user]
    assert f"backfill_job_model --all is for project_admin users only (your role: {role})" in str(e.value)
    audit = flare_system.audit_log.read_text()
    assert f"[U:{user}][A:backfill_job_model {np_job}] REFUSED: {expected}" in audit
    assert f"[U:{user}][A:backfill_job_model --all] REFUSED: backfill_job_model --all is for project_admin" in audit


def test_org_admin_of_the_submitters_org_may_backfill(flare_system, tmp_path):
    job_id = unpublished_job(flare_system, tmp_path / "job")
    with flare_system.session(ORG_ADMIN) as sess:
        assert sess.backfill_job_model(job_id)["outcome"] == "backfilled"


def test_batch_is_idempotent_and_reports_every_job(flare_system, tmp_path):
    job_id = unpublished_job(flare_system, tmp_path / "job")
    with flare_system.session() as sess:
        first = {r["job_id"]: r for r in sess.backfill_all_job_models()}
        second = {r["job_id"]: r for r in sess.backfill_all_job_models()}
    assert first[job_id]["outcome"] == "backfilled", first[job_id]
    assert second[job_id] == {**second[job_id], "outcome": "skipped", "message": f"already has {GLOBAL}"}
    assert "backfilled" not in {r["outcome"] for r in second.values()}, second
    assert set(first) == set(second)
    with flare_system.session() as sess:
        listed = {j["job_id"] for j in sess.list_jobs()}
    assert set(first) == listed


def test_cli_backfill(flare_system, tmp_path):
    job_id = unpublished_job(flare_system, tmp_path / "job")
    kit = ["--startup-kit", str(flare_system.kit())]
    done = flare_system.run_nvflare("job", "backfill-model", job_id, *kit, check=False, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith(f"job {job_id}: backfilled: stored {GLOBAL} from {NP_MODEL}")
    again = flare_system.run_nvflare(
        "--format", "json", "job", "backfill-model", job_id, *kit, check=False, timeout=180
    )
    assert again.returncode == 0, again.stderr
    payload = json.loads(again.stdout)
    assert payload["data"]["results"][0]["outcome"] == "skipped"
    member_kit = ["--startup-kit", str(flare_system.kit(MEMBER))]
    refused = flare_system.run_nvflare("job", "backfill-model", job_id, *member_kit, check=False, timeout=180)
    assert refused.returncode != 0 and "NOT_AUTHORIZED" in refused.stderr, refused.stderr
    both = flare_system.run_nvflare("job", "backfill-model", job_id, "--all", *kit, check=False)
    assert both.returncode == 4 and "give either a job ID or --all" in both.stderr


def test_config_from_the_submitted_job_when_the_archive_has_none(flare_system, tmp_path):
    """A workspace archive without the deployed server config: the job's own "data" names the files."""
    job_id = unpublished_job(flare_system, tmp_path / "job")
    members = workspace_files(flare_system, job_id)
    without = {k: v for k, v in members.items() if not k.endswith("config/config_fed_server.json")}
    assert len(without) == len(members) - 1
    store = JobStore(flare_system.jobs_storage)
    from crafted_zips import build

    store.store.update_object(store.manager.job_uri(job_id), build(without), "workspace")
    with flare_system.session() as sess:
        result = sess.backfill_job_model(job_id)
    assert result["outcome"] == "backfilled", result
    assert (flare_system.job_store_dir(job_id) / GLOBAL).read_bytes() == members[NP_MODEL]


def test_job_without_a_known_persistor_reported(flare_system, tmp_path):
    job_id = unpublished_job(flare_system, tmp_path / "job")
    members = workspace_files(flare_system, job_id)
    config = json.loads(members[NP_CONFIG])
    for comp in config["components"]:
        if comp["id"] == "persistor":
            comp["path"] = "my_org.persistors.MyPersistor"
    store = JobStore(flare_system.jobs_storage)
    from crafted_zips import build

    store.store.update_object(
        store.manager.job_uri(job_id), build({**members, NP_CONFIG: json.dumps(config).encode()}), "workspace"
    )
    from nvflare.fuel.flare_api.model_backfill import BackfillFailed

    with flare_system.session() as sess:
        with pytest.raises(BackfillFailed) as e:
            sess.backfill_job_model(job_id)
    assert str(e.value) == (
        f"job {job_id}: no model: its server config has no persistor that backfill knows "
        "(PTFileModelPersistor, TFModelPersistor, NPModelPersistor, NPFileModelPersistor); its components: "
        "FullModelShareableGenerator, InTimeAccumulateWeightedAggregator, ModelPublisher, MyPersistor "
        "(the live publisher's FL-context fallback needs the running job)"
    )
