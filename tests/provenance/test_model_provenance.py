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
"""Unit tests of model_provenance (statement, signing, every check and its message) and of
the store's signer finding the server's key the way a provisioned kit names it.
Certificates are made here (pki.py) in upstream provisioning's shape."""

import base64
import hashlib
import json
import os
import re

import pytest
from pki import CA

from nvflare.apis.utils import model_provenance as mp
from nvflare.app_common.model_publishing.model_signer import provenance_for, server_key_files

DATA = b"model bytes " * 100
SHA = hashlib.sha256(DATA).hexdigest()
RECORD = {
    "sha256": SHA,
    "size": len(DATA),
    "file_name": "model.pt",
    "format": "PyTorch",
    "round": 4,
    "metric_name": "accuracy",
    "metric_value": 0.1 + 0.2,
    "metric_mode": "max",
    "transfer": "link",
}


@pytest.fixture(scope="module")
def project():
    ca = CA("example_project")
    key, cert = ca.issue("server1")
    return ca, key, cert


STATEMENT_ARGS = dict(
    project="example_project",
    server="server1",
    job_id="j1",
    job_name="hello",
    submitter="admin@a.org",
    component="MODEL_best_global_model",
    record=RECORD,
    stored_at="2026-11-30T00:00:00Z",
    fork_version="2.9.0+model.1",
)


def statement(**over):
    s = mp.make_statement(**STATEMENT_ARGS)
    s.update(over)
    return s


def signed(project, **over):
    ca, key, cert = project
    return mp.sign_statement(statement(**over), key, cert)


def refused(prov, root, sha=SHA, size=len(DATA), component="MODEL_best_global_model", job_id="j1") -> str:
    with pytest.raises(mp.ProvenanceRefused) as e:
        mp.verify_provenance(prov, root, sha, size, component=component, job_id=job_id)
    return str(e.value)


def test_signed_statement_verifies_and_says_by_whom(project):
    ca = project[0]
    prov = signed(project)
    assert prov["algorithm"] == "RSA-PSS-SHA256"
    # the stored statement is the canonical text that was signed
    assert prov["statement"] == json.dumps(json.loads(prov["statement"]), sort_keys=True, separators=(",", ":"))
    assert " " not in prov["statement"]
    s = mp.verify_provenance(prov, ca.pem, SHA, len(DATA), component="MODEL_best_global_model", job_id="j1")
    assert (s["round"], s["metric_value"], s["submitter"], s["file_name"]) == (4, 0.1 + 0.2, "admin@a.org", "model.pt")
    assert "transfer" not in s  # how the store received it is not a claim about the model
    assert mp.verified_line(s, mp.signature_kind(prov)) == (
        "signature verified (server server1, project example_project); weaker: signed with the server's TLS key, not "
        "a dedicated model-signing key; where the server's job processes can read that key (POC, kits run with the "
        "process launcher) any job's code could have signed this statement"
    )
    assert mp.signer_summary(prov) == "server1 (example_project), weaker: TLS key"
    # a float metric survives the JSON round trip of the job meta and of the proof file
    again = json.loads(mp.proof_document(json.loads(json.dumps(prov))))
    assert mp.verify_provenance(again, ca.pem, SHA, len(DATA))["metric_value"] == 0.1 + 0.2


def test_ec_server_key(project):
    ca = project[0]
    key, cert = ca.issue("server1", kind="ec")
    prov = mp.sign_statement(statement(), key, cert)
    assert prov["algorithm"] == "ECDSA-SHA256"
    assert mp.verify_provenance(prov, ca.pem, SHA, len(DATA))["server"] == "server1"


def test_changed_statement_is_a_bad_signature(project):
    prov = signed(project)
    forged = dict(prov, statement=prov["statement"].replace(SHA, "0" * 64))
    assert (
        refused(forged, project[0].pem)
        == "bad signature: the statement was not signed by the key of certificate 'server1'"
    )
    sig = bytearray(base64.b64decode(prov["signature"]))
    sig[10] ^= 1
    assert refused(dict(prov, signature=base64.b64encode(bytes(sig)).decode()), project[0].pem).startswith(
        "bad signature: "
    )
    assert re.fullmatch(
        r"bad signature: algorithm 'ECDSA-SHA256' does not fit the certificate's \w*RSAPublicKey",
        refused(dict(prov, algorithm="ECDSA-SHA256"), project[0].pem),
    )


def test_other_projects_ca_is_refused(project):
    other = CA("other_project")
    key, cert = other.issue("server1")
    prov = mp.sign_statement(statement(), key, cert)
    assert refused(prov, project[0].pem) == (
        "certificate not issued by this project's root CA: the certificate was issued by CN=other_project, "
        "the root CA is CN=example_project"
    )
    # a look-alike CA with the same project name but its own key
    twin = CA("example_project")
    key, cert = twin.issue("server1")
    prov = mp.sign_statement(statement(), key, cert)
    assert refused(prov, project[0].pem) == (
        "certificate not issued by this project's root CA: the certificate names CN=example_project as issuer "
        "but that root CA's key did not sign it"
    )


def test_only_a_server_certificate_signs(project):
    key, cert = project[0].issue("site-1", role="client")
    prov = mp.sign_statement(statement(server="site-1"), key, cert)
    assert refused(prov, project[0].pem) == (
        "certificate is not the project's server certificate: 'site-1' has role 'client'; only the project's server "
        "signs models"
    )
    # upstream's site certificates look like the server's (no role): only the server's name tells them apart
    key, cert = project[0].issue("site-1", role=None)
    prov = mp.sign_statement(statement(server="site-1"), key, cert)
    assert mp.verify_provenance(prov, project[0].pem, SHA, len(DATA))["server"] == "site-1"
    with pytest.raises(mp.ProvenanceRefused) as e:
        mp.verify_provenance(prov, project[0].pem, SHA, len(DATA), server_identity="server1")
    assert str(e.value) == (
        "certificate is not the project's server certificate: it was issued to 'site-1', the project's server is 'server1'"
    )
    assert mp.verify_provenance(signed(project), project[0].pem, SHA, len(DATA), server_identity="server1")


def test_statement_must_name_the_signing_server_and_project(project):
    assert refused(signed(project, server="server2"), project[0].pem) == (
        "statement names another server or project: statement names server 'server2' of project 'example_project', "
        "the certificate is server 'server1' of project 'example_project'"
    )


def test_statement_must_match_the_bytes(project):
    other = hashlib.sha256(b"x").hexdigest()
    assert refused(signed(project), project[0].pem, sha=other, size=1) == (
        f"statement does not match the bytes: the statement says {len(DATA)} bytes with sha256 {SHA}, "
        f"the file has 1 bytes with sha256 {other}"
    )


def test_statement_for_another_component_or_job(project):
    assert refused(signed(project), project[0].pem, component="MODEL_global_model") == (
        "statement is for another component or job: the statement is for MODEL_best_global_model of job j1, "
        "this is MODEL_global_model of job j1"
    )
    assert refused(signed(project), project[0].pem, job_id="j2").endswith("this is MODEL_best_global_model of job j2")


def test_unsigned_and_malformed(project):
    assert refused(None, project[0].pem) == (
        "not signed: no provenance was stored with it (stored before signing, or not a published model)"
    )
    assert refused({"unsigned": "the server has no key"}, project[0].pem) == "not signed: the server has no key"
    assert mp.signer_summary({"unsigned": "x"}) == ""
    prov = signed(project)
    assert refused(dict(prov, signature="***"), project[0].pem) == "malformed provenance: the signature is not base64"
    assert refused(dict(prov, certificate="junk"), project[0].pem).startswith(
        "malformed provenance: the certificate is not a PEM certificate"
    )
    assert refused({"statement": "{}"}, project[0].pem) == "malformed provenance: statement or signature missing"


def _kit(tmp_path, project, config=None, key_name="server.key", cert_name="server.crt"):
    ca, key, cert = project
    startup = tmp_path / "startup"
    startup.mkdir()
    (startup / key_name).write_bytes(key)
    (startup / cert_name).write_bytes(cert)
    if config is not None:
        (startup / "fed_server.json").write_text(json.dumps(config))
    return str(startup)


def test_signer_uses_the_key_fed_server_json_names(tmp_path, project):
    startup = _kit(
        tmp_path, project, {"servers": [{"ssl_private_key": "k.pem", "ssl_cert": "c.pem"}]}, "k.pem", "c.pem"
    )
    assert server_key_files(startup) == (os.path.join(startup, "k.pem"), os.path.join(startup, "c.pem"))
    meta = {"name": "hello", "submitter_name": "admin@a.org"}
    prov = provenance_for(startup, meta, "j1", "MODEL_best_global_model", RECORD)
    s = mp.verify_provenance(prov, project[0].pem, SHA, len(DATA), component="MODEL_best_global_model", job_id="j1")
    assert (s["project"], s["server"], s["job_name"], s["submitter"]) == (
        "example_project",
        "server1",
        "hello",
        "admin@a.org",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s["stored_at"]) and s["fork_version"].startswith("2.9.0")


def test_signer_without_a_key_stores_unsigned(tmp_path, project):
    startup = tmp_path / "startup"
    startup.mkdir()
    assert provenance_for(str(startup), {}, "j1", "MODEL_global_model", RECORD) == {
        "unsigned": "the server has no provisioned key and certificate (startup/server.key, server.crt)"
    }
    (startup / "server.key").write_text("not a key")
    (startup / "server.crt").write_bytes(project[2])
    assert provenance_for(str(startup), {}, "j1", "MODEL_global_model", RECORD) == {
        "unsigned": "signing failed on the server (ValueError)"
    }


# -- strong (dedicated model-signing certificate) versus weaker (TLS certificate) -------------
def _dedicated(ca, name="server1", org="nvidia"):
    from nvflare.lighter.impl.model_signing import issue_certificate, key_pem, new_private_key

    key = new_private_key()
    cert = issue_certificate(key.public_key(), name, org, ca.cert, ca.key)
    from cryptography.hazmat.primitives import serialization

    return key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


def test_dedicated_certificate_signs_strong_and_strict_refuses_the_tls_key(project):
    ca, tls_key, tls_cert = project
    key, cert = _dedicated(ca)
    strong = mp.sign_statement(statement(), key, cert)
    assert mp.signature_kind(strong) == mp.STRONG
    s = mp.verify_provenance(strong, ca.pem, SHA, len(DATA), server_identity="server1", require_strong=True)
    assert mp.verified_line(s, mp.STRONG) == (
        "signature verified (server server1, project example_project); strong: signed with the server's dedicated "
        "model-signing key"
    )
    assert mp.signer_summary(strong) == "server1 (example_project)"

    weak = mp.sign_statement(statement(), tls_key, tls_cert)
    assert mp.verify_provenance(weak, ca.pem, SHA, len(DATA), server_identity="server1")  # still verifies
    with pytest.raises(mp.ProvenanceRefused) as e:
        mp.verify_provenance(weak, ca.pem, SHA, len(DATA), server_identity="server1", require_strong=True)
    assert e.value.check == mp.WEAKER_REFUSED
    assert str(e.value) == (
        "weaker signature refused: strong provenance is required and this one is weaker: signed with the server's "
        "TLS key, not a dedicated model-signing key; where the server's job processes can read that key (POC, kits "
        "run with the process launcher) any job's code could have signed this statement"
    )
    # the content checks come first: a weaker statement for other bytes says so under strict too
    assert refused(weak, ca.pem, sha="0" * 64).startswith("statement does not match the bytes")


def test_the_strong_mark_cannot_be_forged_by_a_key_holder(project):
    """Whoever holds the TLS key (any job on POC) cannot make a certificate with the model-signing usage."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    ca, tls_key, tls_cert = project
    holder = serialization.load_pem_private_key(tls_key, password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    # a certificate with the usage, "issued" under the project's name but signed by the TLS key
    fake = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "server1")]))
        .issuer_name(ca.cert.subject)
        .public_key(holder.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([mp.MODEL_SIGNING_EKU]), critical=True)
        .sign(holder, hashes.SHA256())
    )
    forged = mp.sign_statement(statement(), tls_key, fake.public_bytes(serialization.Encoding.PEM))
    assert refused(forged, ca.pem) == (
        "certificate not issued by this project's root CA: the certificate names CN=example_project as issuer but "
        "that root CA's key did not sign it"
    )
    # the genuine dedicated certificate with a statement signed by the TLS key
    key, cert = _dedicated(ca)
    mixed = mp.sign_statement(statement(), tls_key, cert)
    assert refused(mixed, ca.pem) == "bad signature: the statement was not signed by the key of certificate 'server1'"
    # dropping or adding statement fields changes nothing about the kind: it is the certificate's
    weak = mp.sign_statement({**statement(), "signed_with": "model-signing key"}, tls_key, tls_cert)
    assert mp.signature_kind(weak) == mp.WEAKER
    # a model-signing certificate issued to a client site is not the server's
    site_key, site_cert = _dedicated(ca, name="site-1")
    with pytest.raises(mp.ProvenanceRefused) as e:
        mp.verify_provenance(
            mp.sign_statement(statement(server="site-1"), site_key, site_cert),
            ca.pem,
            SHA,
            len(DATA),
            server_identity="server1",
            require_strong=True,
        )
    assert str(e.value) == (
        "certificate is not the project's server certificate: it was issued to 'site-1', the project's server is 'server1'"
    )


def test_a_ca_certificate_with_the_usage_is_not_strong(project):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    ca = project[0]
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "server1")]))
        .issuer_name(ca.cert.subject)
        .public_key(ca.key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([mp.MODEL_SIGNING_EKU]), critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    assert not mp.is_model_signing_certificate(cert)


def test_unchecked_and_job_reported_are_in_the_signed_statement(project):
    s = mp.make_statement(
        **STATEMENT_ARGS,
        unchecked=["that models/x.npy was a regular file"],
        job_reported=("file_name", "round", "not_there"),
    )
    assert (s["unchecked"], s["job_reported"]) == (["that models/x.npy was a regular file"], ["file_name", "round"])
    prov = mp.sign_statement(s, project[1], project[2])
    assert mp.signer_summary(prov) == "server1 (example_project), weaker: TLS key, with unchecked origin"
    assert mp.verified_line(s, mp.STRONG).endswith(
        "strong: signed with the server's dedicated model-signing key; unchecked: that models/x.npy was a regular file"
    )


def test_the_admin_kits_requirement_and_its_env_override(tmp_path, monkeypatch):
    """component_provenance reads model_provenance from the kit beside the session's rootCA.pem."""
    from types import SimpleNamespace

    from nvflare.fuel.hci.client.component_provenance import required_provenance

    startup = tmp_path / "startup"
    startup.mkdir()
    api = SimpleNamespace(ca_cert=str(startup / "rootCA.pem"))  # what AdminAPI keeps of the kit
    monkeypatch.delenv("NVFLARE_MODEL_PROVENANCE", raising=False)
    assert required_provenance(api) == ("any", "default")
    (startup / "fed_admin.json").write_text(json.dumps({"admin": {"model_provenance": "signed"}}))
    assert required_provenance(api) == ("signed", f"model_provenance in {startup / 'fed_admin.json'}")
    monkeypatch.setenv("NVFLARE_MODEL_PROVENANCE", "strong")
    assert required_provenance(api) == ("strong", "env NVFLARE_MODEL_PROVENANCE")
    monkeypatch.setenv("NVFLARE_MODEL_PROVENANCE", "Strong")
    with pytest.raises(ValueError) as e:
        required_provenance(api)
    assert str(e.value) == "invalid env NVFLARE_MODEL_PROVENANCE: 'Strong' must be one of any, signed, strong"
