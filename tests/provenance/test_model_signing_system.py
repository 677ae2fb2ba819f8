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
"""No BYOC job can forge strong model provenance, on a real provisioned system with leads of two orgs
under FLARE's default policy (``byoc: any``).

A lead's job steals every key and certificate its server process can reach (key_thief) and
its submitter gets them with ``download_job``; with each key it signs statements claiming
another org's job produced a file of its choosing. ``nvflare model verify`` refuses each
forgery or reports it as weaker, and ``--strict`` refuses each with the exact message.

* The default deployment (POC kits, the process launcher): the server signs with its TLS
  key, genuine models verify as weaker (with the reason), the TLS key is among the stolen.
* A server using a dedicated model-signing key (``model_signing_key_dir`` outside the
  workspace, and ``model_signing_isolated_launchers`` naming the process launcher): genuine
  models verify under ``--strict``, and the stolen keys still sign only weaker statements.
  This only *simulates* the parent's use of the key: here the key merely lies outside
  everything the thief looks at, while the job runs as the same OS user and could find it.
  That no job can read it at all holds only with job processes in containers (docs/provenance.md).

Also: the admin kit's ``model_provenance`` setting (signed / strong) on real downloads, and
backfill of a run folder whose model is a planted symlink.
"""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from admin_console import AdminConsole
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from flare_system import FlareSystem
from job_components import LEAD, OTHER_ORG_LEAD, JobStore, add_role_users, write_numpy_job
from key_thief import (
    EVIL,
    STRICT_REFUSAL,
    STRONG,
    WEAKER,
    cert_for,
    forgeries,
    link_planter_job,
    public_bytes,
    stolen_material,
    thief_job,
    verify_in_process,
)
from model_jobs import GLOBAL, PUBLISHER, add_server_component, file_model_job, job_meta, workspace_files

pytestmark = pytest.mark.system

PROCESS = "nvflare.app_common.job_launcher.server_process_launcher.ServerProcessJobLauncher"


def verify(system, path, *args):
    return system.run_nvflare("model", "verify", str(path), *args, check=False, timeout=60)


def ca_of(system, user):
    return system.kit(user) / "startup" / "rootCA.pem"  # fed_admin.json beside it names the server


def finished(system, folder, user):
    job_id, meta = system.submit_and_wait(folder, user=user)
    assert meta["status"] == "FINISHED:COMPLETED", meta
    return job_id


def victim_model(system, tmp_path):
    """The other org's lead's job and its downloaded model (the proof beside it)."""
    job_id = finished(
        system, file_model_job(tmp_path / "victim", name="victim_model", size_mb=1, train_seconds=0.2), OTHER_ORG_LEAD
    )
    with system.session(OTHER_ORG_LEAD) as sess:
        path = sess.download_job_component(job_id, GLOBAL, str(tmp_path / "victim_dl"))
    return job_id, path


def steal(system, tmp_path):
    """The thief's job, run by a lead of the first org; what came back in its download_job."""
    job_id = finished(system, thief_job(tmp_path / "thief"), LEAD)
    with system.session(LEAD) as sess:
        folder = sess.download_job_result(job_id, str(tmp_path / "thief_dl"))
    return stolen_material(folder)


def expected_refusal(cert, server: str):
    """None if a statement signed with ``cert``'s key passes every check but the strength, else the refusal."""
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    roles = cert.subject.get_attributes_for_oid(NameOID.UNSTRUCTURED_NAME)
    if roles and roles[0].value != "server":
        return f"certificate is not the project's server certificate: {cn!r} has role {roles[0].value!r}; only the project's server signs models"
    if cn != server:
        return f"certificate is not the project's server certificate: it was issued to {cn!r}, the project's server is {server!r}"
    return None


def check_forgeries(system, tmp_path, keys, certs, victim_id, victim_path, server="server") -> dict:
    """Every stolen key signs both forgeries; each is refused or weaker, and --strict refuses each. {key origin: outcome}.

    The forgeries with the server's TLS key go through the real ``nvflare model verify``; the rest
    (sites' and users' keys, refused whatever the mode) through its handler in this process.
    """
    proof = json.loads(Path(victim_path + ".provenance.json").read_text())
    genuine = json.loads(proof["statement"])
    assert genuine["job_id"] == victim_id and genuine["submitter"] == OTHER_ORG_LEAD
    ca = str(ca_of(system, LEAD))
    outcomes = {}
    for n, (origin, key) in enumerate(keys):
        cert = cert_for(key, certs)
        cert_pem = cert.public_bytes(serialization.Encoding.PEM) if cert else proof["certificate"].encode()
        refusal = (
            expected_refusal(cert, server)
            if cert
            else f"bad signature: the statement was not signed by the key of certificate {server!r}"
        )
        for variant, prov in forgeries(genuine, EVIL, key, cert_pem).items():
            evil = tmp_path / f"forged_{n}_{variant[:5]}.pt"
            evil.write_bytes(EVIL)
            (tmp_path / f"{evil.name}.provenance.json").write_text(json.dumps(prov))
            if refusal is None:  # the server's TLS key: verifies, as weaker - and never under --strict
                plain, strict = verify(system, evil, "--ca", ca), verify(system, evil, "--ca", ca, "--strict")
                assert plain.returncode == 0 and plain.stdout.strip().endswith(WEAKER), (origin, variant, plain)
                assert f"{GLOBAL} of job {victim_id} ('victim_model' by {OTHER_ORG_LEAD})" in plain.stdout
                assert (strict.returncode, strict.stderr.strip()) == (1, f"FAILED {evil}: {STRICT_REFUSAL}"), origin
                outcomes[origin] = "weaker"
            else:
                for mode in ((), ("--strict",)):
                    code, out, err = verify_in_process(evil, "--ca", ca, *mode)
                    assert (code, out, err.strip()) == (1, "", f"FAILED {evil}: {refusal}"), (origin, variant, mode)
                outcomes[origin] = "refused"
    return outcomes


# -- the default deployment ------------------------------------------------------------------
@pytest.fixture(scope="module")
def victim(flare_system, tmp_path_factory):
    return victim_model(flare_system, tmp_path_factory.mktemp("victim"))


def test_byoc_thief_on_the_default_deployment_forges_nothing_strict_accepts(flare_system, victim, tmp_path):
    victim_id, victim_path = victim
    ok = verify(flare_system, victim_path, "--ca", str(ca_of(flare_system, OTHER_ORG_LEAD)))
    assert ok.returncode == 0 and ok.stdout.strip().endswith(WEAKER), ok
    strict = verify(flare_system, victim_path, "--ca", str(ca_of(flare_system, OTHER_ORG_LEAD)), "--strict")
    assert (strict.returncode, strict.stderr.strip()) == (1, f"FAILED {victim_path}: {STRICT_REFUSAL}")

    keys, certs = steal(flare_system, tmp_path)
    tls = (flare_system.server_dir / "startup" / "server.crt").read_bytes()
    tls_public = public_bytes(x509.load_pem_x509_certificate(tls))
    assert any(public_bytes(k) == tls_public for _, k in keys), [o for o, _ in keys]  # the thief got the TLS key
    outcomes = check_forgeries(flare_system, tmp_path, keys, certs, victim_id, victim_path)
    assert "weaker" in outcomes.values() and "refused" in outcomes.values(), outcomes  # TLS key; sites', users' keys
    assert not list(flare_system.prod.parent.rglob("*.model-signing"))  # POC issues no dedicated key


# -- a server that uses its dedicated key ------------------------------------------------------
@pytest.fixture(scope="module")
def strong_system(tmp_path_factory):
    """A second real system whose parent signs with a dedicated key issued by the operator path."""
    root = tmp_path_factory.mktemp("strong")
    system = FlareSystem(root, n_clients=1, project_edit=add_role_users)
    try:
        system.prepare()
        key_dir = root / "model-signing"  # outside the server's workspace and the kits beside it
        system.run_nvflare("fork", "signing-key", "request", str(system.server_dir), "--dir", str(key_dir))
        state = system.prod.parent / "state"  # the provisioning state holding the root CA key
        system.run_nvflare(
            "fork", "signing-key", "sign", str(key_dir / "model_signing.csr"), "--ca", str(state), "--server", "server"
        )
        system.run_nvflare(
            "fork", "signing-key", "install", str(system.server_dir), str(key_dir / "model_signing.crt"),
            "--dir", str(key_dir),
        )  # fmt: skip
        system.set_server_settings(model_signing_key_dir=str(key_dir), model_signing_isolated_launchers=[PROCESS])
        system.start()
        system.key_dir = key_dir
        yield system
    finally:
        system.stop()


def test_with_the_dedicated_key_genuine_models_verify_strict_and_stolen_keys_do_not(strong_system, tmp_path):
    log = (strong_system.server_dir / "log.txt").read_text()
    assert (
        f"Model provenance: models are signed with the dedicated model-signing key "
        f"{strong_system.key_dir / 'model_signing.key'}; job processes (ServerProcessJobLauncher) cannot read "
        f"{strong_system.key_dir}" in log
    )
    victim_id, victim_path = victim_model(strong_system, tmp_path)
    record = job_meta(strong_system, victim_id)["component_records"][GLOBAL]
    assert record["hashed"] == "store"  # a strong signature covers only what the parent hashed itself
    statement = json.loads(record["provenance"]["statement"])
    assert statement["job_reported"] == ["file_name", "format"]
    ca = ca_of(strong_system, OTHER_ORG_LEAD)
    ok = verify(strong_system, victim_path, "--ca", str(ca), "--strict")
    assert ok.returncode == 0 and ok.stdout.strip().endswith(STRONG), ok

    keys, certs = steal(strong_system, tmp_path)
    dedicated = public_bytes(x509.load_pem_x509_certificate((strong_system.key_dir / "model_signing.crt").read_bytes()))
    assert keys and not [o for o, k in keys if public_bytes(k) == dedicated]
    outcomes = check_forgeries(strong_system, tmp_path, keys, certs, victim_id, victim_path)
    assert "weaker" in outcomes.values(), outcomes  # the TLS key is still readable, and still only weaker


# -- the admin kit requires provenance ---------------------------------------------------------
def test_console_requires_signed_or_strong_provenance(flare_system, victim, tmp_path):
    job_id = victim[0]
    kit_config = flare_system.kit(OTHER_ORG_LEAD) / "startup" / "fed_admin.json"
    saved = kit_config.read_text()
    meta_file = flare_system.job_store_dir(job_id) / "meta"
    saved_meta = meta_file.read_text()

    def refused(dest):
        out = console_download_as(flare_system, job_id, dest, OTHER_ORG_LEAD)
        assert not dest.exists() or list(dest.iterdir()) == [], list(dest.iterdir())
        lines = [line.strip() for line in out.splitlines() if f"download of {GLOBAL}" in line]
        assert lines, out
        return lines[0]

    try:
        config = json.loads(saved)
        config["admin"]["model_provenance"] = "strong"
        kit_config.write_text(json.dumps(config))
        assert refused(tmp_path / "a") == (
            f"download of {GLOBAL} refused: {STRICT_REFUSAL} (model_provenance in {kit_config}); no file was kept"
        )
        config["admin"]["model_provenance"] = "signed"
        kit_config.write_text(json.dumps(config))
        ok = console_download_as(flare_system, job_id, tmp_path / "b", OTHER_ORG_LEAD)
        assert f"signature verified (server server, project example_project); {WEAKER}" in ok, ok
        meta = json.loads(saved_meta)
        del meta["component_records"][GLOBAL]["provenance"]
        meta_file.write_text(json.dumps(meta))
        assert refused(tmp_path / "c") == (
            f"download of {GLOBAL} refused: not signed: no provenance was stored with it (stored before signing, or "
            f"not a published model); signed provenance is required (model_provenance in {kit_config}); no file was kept"
        )
        config["admin"]["model_provenance"] = "yes"
        kit_config.write_text(json.dumps(config))
        assert refused(tmp_path / "d") == (
            f"download of {GLOBAL} refused: invalid model_provenance in {kit_config}: 'yes' must be one of any, "
            "signed, strong; no file was kept"
        )
    finally:
        kit_config.write_text(saved)
        meta_file.write_text(saved_meta)


def console_download_as(system, job_id, dest, user=LEAD):
    with AdminConsole(system.kit(user), env=system.env) as c:
        return c.run(f"download_job_component {job_id} {GLOBAL} {dest}", timeout=180)


# -- backfill: what live publishing refuses -----------------------------------------------------
def test_backfill_of_a_planted_symlink_stores_nothing_and_an_old_archive_says_what_was_unchecked(
    flare_system, tmp_path
):
    secret = tmp_path / "outside" / "secret.npy"
    secret.parent.mkdir()
    secret.write_bytes(b"bytes from outside the job's run folder")
    job = write_numpy_job(tmp_path / "np")
    add_server_component(job, {"id": "model_publisher", "path": PUBLISHER, "args": {"enabled": False}})
    link_planter_job(job, "models/server.npy", str(secret))
    job_id = finished(flare_system, job, LEAD)
    members = workspace_files(flare_system, job_id)
    assert "models/server.npy" not in members and secret.read_bytes() not in b"".join(members.values())
    from nvflare.fuel.flare_api.model_backfill import BackfillFailed

    with flare_system.session(LEAD) as sess:
        with pytest.raises(BackfillFailed) as e:
            sess.backfill_job_model(job_id)
    assert str(e.value) == (
        f"job {job_id}: no model: {GLOBAL}: models/server.npy is not in the workspace archive (it leaves out the run "
        "folder's symlinks and special files, which live publishing refuses too)"
    )

    # an archive written before the fork holds a link's target as a regular file: stored, and the statement says so
    from crafted_zips import build

    store = JobStore(flare_system.jobs_storage)
    store.store.update_object(
        store.manager.job_uri(job_id), build({**members, "models/server.npy": secret.read_bytes()}), "workspace"
    )
    with flare_system.session(LEAD) as sess:
        result = sess.backfill_job_model(job_id)
    assert result["message"].endswith(
        "sha256 " + hashlib.sha256(secret.read_bytes()).hexdigest()[:12] + ", origin unchecked: see its provenance)"
    )
    unchecked = (
        "unchecked: that models/server.npy was a regular file of the job's run folder: this workspace archive was not "
        "written by the nvflare model fork, and such an archive holds a symlink's or a hard link's target as a "
        "regular file (live publishing refuses both)"
    )
    out = console_download_as(flare_system, job_id, tmp_path / "dl")
    assert f"{WEAKER}; {unchecked}" in out, out
    path = tmp_path / "dl" / f"{GLOBAL}.npy"
    ok = verify(flare_system, path, "--ca", str(ca_of(flare_system, LEAD)))
    assert ok.returncode == 0 and ok.stdout.strip().endswith(f"{WEAKER}; {unchecked}"), ok
    shutil.rmtree(tmp_path / "dl")
