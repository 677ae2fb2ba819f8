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
"""Signed model provenance on a real provisioned system.

A model the job's server publishes is signed by the server's provisioned key; the real
console, the FLARE API and the CLI verify it against the admin kit's rootCA.pem, and
``nvflare model verify`` verifies the downloaded file offline. Whoever can write the job
store (the attacker here edits the store's files directly, as a compromised store host
would) is caught: changed bytes, changed bytes with a record to match, a changed
statement, a statement signed under another project's root CA or with a client site's
key, a statement moved to another component. Each refusal is checked by its exact message, and no file is kept.

Behaviour test for cli-nvflare-model-verify.patch: without it ``nvflare model verify``
is an unknown command.
"""

import contextlib
import hashlib
import json
import shutil

import pytest
from admin_console import AdminConsole
from cryptography import x509
from cryptography.x509.oid import NameOID
from downloads import console_download
from job_components import JobStore
from model_jobs import GLOBAL, file_model_job, run_and_catch_finish
from pki import CA

from nvflare.apis.utils.model_provenance import make_statement, sign_statement, verify_provenance

pytestmark = pytest.mark.system

PROJECT = "example_project"
WEAKER = (
    "weaker: signed with the server's TLS key, not a dedicated model-signing key; where the server's job processes "
    "can read that key (POC, kits run with the process launcher) any job's code could have signed this statement"
)


def _cn(path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


@pytest.fixture(scope="module")
def signed_job(flare_system, tmp_path_factory):
    folder = file_model_job(tmp_path_factory.mktemp("prov") / "job", name="prov_model", size_mb=1, train_seconds=0.5)
    job_id, status, components = run_and_catch_finish(flare_system, folder)
    assert status == "FINISHED:COMPLETED" and GLOBAL in components, (status, components)
    return job_id


@pytest.fixture(scope="module")
def server_name(flare_system):
    return _cn(flare_system.server_dir / "startup" / "server.crt")


def root_ca(system):
    return system.kit() / "startup" / "rootCA.pem"


def meta_path(system, job_id):
    return system.job_store_dir(job_id) / "meta"


def record_of(system, job_id, component=GLOBAL) -> dict:
    return json.loads(meta_path(system, job_id).read_text())["component_records"][component]


@contextlib.contextmanager
def tampered_store(system, job_id):
    """Yields (model path, meta dict to edit); writes the meta on entry's exit, restores both after."""
    model, meta_file = system.job_store_dir(job_id) / GLOBAL, meta_path(system, job_id)
    saved_model, saved_meta = model.read_bytes(), meta_file.read_text()
    meta = json.loads(saved_meta)
    try:
        yield model, meta, lambda: meta_file.write_text(json.dumps(meta))
    finally:
        model.write_bytes(saved_model)
        meta_file.write_text(saved_meta)


def verify_cli(system, *args):
    return system.run_nvflare("model", "verify", *args, check=False, timeout=60)


def refused_download(system, job_id, dest, component=GLOBAL) -> str:
    out = console_download(system, job_id, component, dest)
    assert not dest.exists() or list(dest.iterdir()) == [], list(dest.iterdir())  # no final, no temp file
    lines = [line for line in out.splitlines() if f"download of {component}" in line]
    assert lines, out
    return lines[0].strip()


def test_published_model_is_signed_and_listed(flare_system, signed_job, server_name):
    record = record_of(flare_system, signed_job)
    prov = record["provenance"]
    statement = verify_provenance(
        prov, root_ca(flare_system).read_bytes(), record["sha256"], record["size"], component=GLOBAL, job_id=signed_job
    )
    assert {k: statement[k] for k in ("project", "server", "job_id", "job_name", "submitter", "component", "size")} == {
        "project": PROJECT,
        "server": server_name,
        "job_id": signed_job,
        "job_name": "prov_model",
        "submitter": "admin@nvidia.com",
        "component": GLOBAL,
        "size": 1024 * 1024,
    }
    assert prov["algorithm"] == "RSA-PSS-SHA256"
    with flare_system.session() as sess:
        rows = {r["name"]: r for r in sess.list_job_component_info(signed_job)}
    assert rows[GLOBAL]["signed_by"] == f"{server_name} ({PROJECT}), weaker: TLS key"
    assert "provenance" not in rows[GLOBAL]  # the listing shows who, the download verifies


def test_console_listing_shows_who_signed(flare_system, signed_job, server_name):
    JobStore(flare_system.jobs_storage).put(signed_job, "LOG_site-9", b"a log line\n")
    with AdminConsole(flare_system.kit(), env=flare_system.env) as c:
        out = c.run(f"list_job_component_info {signed_job}")
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("|")]
    signed_by = {row[0]: row[rows[0].index("SIGNED BY")] for row in rows[1:]}
    assert signed_by[GLOBAL] == f"{server_name} ({PROJECT}), weaker: TLS key", out
    assert signed_by["LOG_site-9"] == "not signed", out


def test_console_download_verifies_and_offline_verify(flare_system, signed_job, server_name, tmp_path):
    dest = tmp_path / "dl"
    out = console_download(flare_system, signed_job, GLOBAL, dest)
    model = dest / f"{GLOBAL}.pt"
    proof = dest / f"{GLOBAL}.pt.provenance.json"
    assert f"signature verified (server {server_name}, project {PROJECT}); {WEAKER}; proof in {proof}" in out, out
    assert sorted(p.name for p in dest.iterdir()) == sorted([model.name, proof.name])

    ok = verify_cli(flare_system, str(model), "--ca", str(root_ca(flare_system)))
    assert ok.returncode == 0, ok.stderr
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    assert ok.stdout.startswith(
        f"OK {model}: signature verified (server {server_name}, project {PROJECT}); {GLOBAL} of job {signed_job} "
        f"('prov_model' by admin@nvidia.com)"
    ), ok.stdout
    assert f"1048576 bytes, sha256 {sha}" in ok.stdout and ok.stdout.count("\n") == 1
    assert ok.stdout.strip().endswith(f"; {WEAKER}"), ok.stdout
    as_json = json.loads(
        verify_cli(flare_system, str(model), "--ca", str(root_ca(flare_system)), "--format", "json").stdout
    )
    assert (as_json["status"], as_json["statement"]["sha256"], as_json["kind"]) == ("ok", sha, "weaker")
    assert as_json["weaker_reason"] == WEAKER[len("weaker: ") :]

    # a modified copy (the proof copied along) fails; so does a copy without its proof
    copy = tmp_path / "copy.pt"
    data = bytearray(model.read_bytes())
    data[0] ^= 0xFF
    copy.write_bytes(bytes(data))
    shutil.copyfile(proof, tmp_path / "copy.pt.provenance.json")
    bad = verify_cli(flare_system, str(copy), "--ca", str(root_ca(flare_system)))
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip() == (
        f"FAILED {copy}: statement does not match the bytes: the statement says 1048576 bytes with sha256 {sha}, "
        f"the file has 1048576 bytes with sha256 {hashlib.sha256(bytes(data)).hexdigest()}"
    )
    bad_json = json.loads(
        verify_cli(flare_system, str(copy), "--ca", str(root_ca(flare_system)), "--format", "json").stdout
    )
    assert bad_json["check"] == "statement does not match the bytes"
    (tmp_path / "copy.pt.provenance.json").unlink()
    missing = verify_cli(flare_system, str(copy), "--ca", str(root_ca(flare_system)))
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"FAILED {copy}: cannot read the provenance file {copy}.provenance.json: No such file or directory"
    )
    # rootCA.pem alone (no admin kit's fed_admin.json beside it): the server's name must be given
    alone = tmp_path / "rootCA.pem"
    shutil.copyfile(root_ca(flare_system), alone)
    nameless = verify_cli(flare_system, str(model), "--ca", str(alone))
    assert nameless.returncode == 2
    assert nameless.stderr.strip() == (
        f"FAILED {model}: the project's server name is needed to tell its certificate from a client site's: pass "
        f"--server <name> (server_identity in an admin kit's fed_admin.json; no fed_admin.json with it beside {alone})"
    )
    assert verify_cli(flare_system, str(model), "--ca", str(alone), "--server", server_name).returncode == 0
    site = verify_cli(flare_system, str(model), "--ca", str(alone), "--server", "site-1")
    assert site.returncode == 1 and site.stderr.strip() == (
        f"FAILED {model}: certificate is not the project's server certificate: it was issued to {server_name!r}, "
        "the project's server is 'site-1'"
    )
    # another project's root CA does not vouch for this server
    other = tmp_path / "otherCA.pem"
    other.write_bytes(CA("other_project").pem)
    foreign = verify_cli(flare_system, str(model), "--ca", str(other), "--server", server_name)
    assert foreign.returncode == 1
    assert foreign.stderr.strip() == (
        f"FAILED {model}: certificate not issued by this project's root CA: the certificate was issued by "
        f"CN={PROJECT}, the root CA is CN=other_project"
    )


def test_api_and_cli_download_verify_and_keep_the_proof(flare_system, signed_job, server_name, tmp_path):
    with flare_system.session() as sess:
        path = sess.download_job_component(signed_job, GLOBAL, str(tmp_path / "api"))
    proof = json.loads(open(path + ".provenance.json").read())
    assert proof["statement"] == record_of(flare_system, signed_job)["provenance"]["statement"]

    out = flare_system.run_nvflare(
        "job",
        "download",
        signed_job,
        "--component",
        GLOBAL,
        "-o",
        str(tmp_path / "cli"),
        "--startup-kit",
        str(flare_system.kit()),
        check=False,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    assert f"signature verified (server {server_name}, project {PROJECT})" in out.stdout, out.stdout
    target = tmp_path / "cli" / "components" / signed_job / f"{GLOBAL}.pt"
    assert (tmp_path / "cli" / "components" / signed_job / f"{GLOBAL}.pt.provenance.json").is_file()
    forced = flare_system.run_nvflare(
        "job",
        "download",
        signed_job,
        "--component",
        GLOBAL,
        "-o",
        str(tmp_path / "cli"),
        "--force",
        "--startup-kit",
        str(flare_system.kit()),
        check=False,
        timeout=180,
    )
    assert forced.returncode == 0, forced.stderr
    # --force replaces the model and its proof; no stray __1 files
    assert sorted(p.name for p in target.parent.iterdir()) == [f"{GLOBAL}.pt", f"{GLOBAL}.pt.provenance.json"]
    assert verify_cli(flare_system, str(target), "--ca", str(root_ca(flare_system))).returncode == 0


def test_changed_bytes_are_refused(flare_system, signed_job, tmp_path):
    rec = record_of(flare_system, signed_job)
    with tampered_store(flare_system, signed_job) as (model, meta, save):
        data = bytearray(model.read_bytes())
        data[100] ^= 1
        model.write_bytes(bytes(data))
        line = refused_download(flare_system, signed_job, tmp_path / "dl")
    assert line == (
        f"download of {GLOBAL} failed verification: received 1048576 bytes with sha256 "
        f"{hashlib.sha256(bytes(data)).hexdigest()}, the server recorded 1048576 bytes with sha256 {rec['sha256']}; "
        "no file was kept"
    )


def test_changed_bytes_with_a_matching_record_are_refused(flare_system, signed_job, tmp_path):
    rec = record_of(flare_system, signed_job)
    evil = b"evil model" * 1000
    evil_sha = hashlib.sha256(evil).hexdigest()
    with tampered_store(flare_system, signed_job) as (model, meta, save):
        model.write_bytes(evil)
        meta["component_records"][GLOBAL].update(sha256=evil_sha, size=len(evil))
        save()
        line = refused_download(flare_system, signed_job, tmp_path / "dl")
    assert line == (
        f"download of {GLOBAL} refused: statement does not match the bytes: the statement says 1048576 bytes with "
        f"sha256 {rec['sha256']}, the file has {len(evil)} bytes with sha256 {evil_sha}; no file was kept"
    )


def test_changed_statement_is_refused(flare_system, signed_job, server_name, tmp_path):
    rec = record_of(flare_system, signed_job)
    evil = b"evil model" * 1000
    evil_sha = hashlib.sha256(evil).hexdigest()
    with tampered_store(flare_system, signed_job) as (model, meta, save):
        model.write_bytes(evil)
        r = meta["component_records"][GLOBAL]
        r.update(sha256=evil_sha, size=len(evil))
        statement = json.loads(r["provenance"]["statement"])
        statement.update(sha256=evil_sha, size=len(evil))
        r["provenance"]["statement"] = json.dumps(statement, sort_keys=True, separators=(",", ":"))
        assert r["provenance"]["statement"] != rec["provenance"]["statement"]
        save()
        line = refused_download(flare_system, signed_job, tmp_path / "dl")
    assert line == (
        f"download of {GLOBAL} refused: bad signature: the statement was not signed by the key of certificate "
        f"'{server_name}'; no file was kept"
    )


def test_statement_signed_under_another_projects_root_ca_is_refused(flare_system, signed_job, server_name, tmp_path):
    """The attacker has a complete, valid-looking server identity - from a CA that is not this project's."""
    evil = b"evil model" * 1000
    evil_sha = hashlib.sha256(evil).hexdigest()
    other = CA("other_project")
    key, cert = other.issue(server_name)
    with tampered_store(flare_system, signed_job) as (model, meta, save):
        model.write_bytes(evil)
        r = meta["component_records"][GLOBAL]
        r.update(sha256=evil_sha, size=len(evil))
        statement = json.loads(r["provenance"]["statement"])
        statement.update(sha256=evil_sha, size=len(evil))
        r["provenance"] = sign_statement(statement, key, cert)
        save()
        line = refused_download(flare_system, signed_job, tmp_path / "dl")
    assert line == (
        f"download of {GLOBAL} refused: certificate not issued by this project's root CA: the certificate was issued "
        f"by CN=other_project, the root CA is CN={PROJECT}; no file was kept"
    )


def test_statement_signed_by_a_client_sites_key_is_refused(flare_system, signed_job, server_name, tmp_path):
    """A site's provisioned key and certificate come from this project's root CA, like the server's."""
    site_kit = flare_system.prod / "site-1" / "startup"
    key, cert = (site_kit / "client.key").read_bytes(), (site_kit / "client.crt").read_bytes()
    evil = b"evil model" * 1000
    evil_sha = hashlib.sha256(evil).hexdigest()
    with tampered_store(flare_system, signed_job) as (model, meta, save):
        model.write_bytes(evil)
        r = meta["component_records"][GLOBAL]
        r.update(sha256=evil_sha, size=len(evil))
        statement = json.loads(r["provenance"]["statement"])
        statement.update(sha256=evil_sha, size=len(evil), server="site-1")
        r["provenance"] = sign_statement(statement, key, cert)
        save()
        line = refused_download(flare_system, signed_job, tmp_path / "dl")
    assert line == (
        f"download of {GLOBAL} refused: certificate is not the project's server certificate: it was issued to "
        f"'site-1', the project's server is {server_name!r}; no file was kept"
    )


def test_statement_moved_to_another_component_is_refused(flare_system, signed_job, tmp_path):
    rec = record_of(flare_system, signed_job)
    store = JobStore(flare_system.jobs_storage)
    store.put(signed_job, "MODEL_copy", str(flare_system.job_store_dir(signed_job) / GLOBAL))
    with tampered_store(flare_system, signed_job) as (model, meta, save):
        meta["component_records"]["MODEL_copy"] = dict(rec)  # the genuine record, provenance and all
        save()
        line = refused_download(flare_system, signed_job, tmp_path / "dl", component="MODEL_copy")
    assert line == (
        f"download of MODEL_copy refused: statement is for another component or job: the statement is for {GLOBAL} "
        f"of job {signed_job}, this is MODEL_copy of job {signed_job}; no file was kept"
    )


def test_removed_provenance_downloads_as_not_signed(flare_system, signed_job, tmp_path):
    """A record without provenance (older models look like this) is delivered and says so; there is no proof."""
    with tampered_store(flare_system, signed_job) as (model, meta, save):
        del meta["component_records"][GLOBAL]["provenance"]
        save()
        out = console_download(flare_system, signed_job, GLOBAL, tmp_path / "dl")
    assert "not signed: no provenance was stored with it (stored before signing, or not a published model)" in out, out
    assert [p.name for p in (tmp_path / "dl").iterdir()] == [f"{GLOBAL}.pt"]
    missing = verify_cli(flare_system, str(tmp_path / "dl" / f"{GLOBAL}.pt"), "--ca", str(root_ca(flare_system)))
    assert missing.returncode == 2
