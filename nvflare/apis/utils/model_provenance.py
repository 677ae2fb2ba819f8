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
"""Signed provenance of a stored model: the statement, its signature, and how to check them.

A sha256 in the job store protects the transfer, not the origin: whoever can write the
store can change a model and its record together, and a file that left the admin machine
carries no proof at all. So the server signs a statement about every model it stores
(project, server, job, submitter, component, file name, format, size, sha256, round,
metric, time, fork version) with its provisioned key, and keeps statement, signature and
its certificate with the record. Anyone holding the project's ``rootCA.pem`` can then
check, without a FLARE system, that

* the certificate is this project's server certificate (issued by the root CA, role
  ``server``),
* the signature over the exact statement bytes is the certificate's key's,
* the statement describes these bytes (sha256 and size) and this component of this job.

Two kinds of signature, told apart by the certificate (never by a statement field: whoever
holds a key writes the statement, and drops any field it does not like). **Strong**: the
certificate carries the fork's model-signing extended key usage (``MODEL_SIGNING_EKU``),
which only the project's root CA can put there; the server keeps that key where its job
processes cannot read it (model_signing_key). **Weaker**: the server's TLS certificate
(upstream's, no such usage). Every job process of a POC or process-launcher deployment
can read the TLS key, so a job's own code can make a weaker statement that verifies;
``require_strong`` refuses them.

The statement is stored as the exact bytes that were signed (canonical JSON text: sorted
keys, no whitespace, UTF-8), so verifying never depends on re-serializing it, and
``openssl dgst`` can check it by hand (docs/provenance.md). The algorithm is upstream's
own choice for signing job folders (nvflare.lighter.utils.sign_content): RSA-PSS with
SHA-256, MGF1-SHA-256 and the maximum salt length; EC keys use ECDSA with SHA-256.

This module is pure (cryptography and the standard library): the admin client, the
store and ``nvflare model verify`` all use it, the last one on a machine with no FLARE
system at all.
"""

import base64
import binascii
import json
from typing import Optional

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

# record field holding the provenance ({statement, signature, certificate, algorithm} or {unsigned})
PROVENANCE = "provenance"

STATEMENT = "statement"  # the signed bytes, as text (canonical JSON)
SIGNATURE = "signature"  # base64 of the signature over STATEMENT's UTF-8 bytes
CERTIFICATE = "certificate"  # PEM of the signing server's certificate
ALGORITHM = "algorithm"
UNSIGNED = "unsigned"  # {UNSIGNED: why}: the store could not sign (no key, signing failed)

RSA_PSS_SHA256 = "RSA-PSS-SHA256"
ECDSA_SHA256 = "ECDSA-SHA256"

# statement fields
TYPE = "type"
STATEMENT_TYPE = "nvflare-model-provenance/1"
PROJECT = "project"
SERVER = "server"
JOB_ID = "job_id"
JOB_NAME = "job_name"
SUBMITTER = "submitter"
COMPONENT = "component"
FILE_NAME = "file_name"
FORMAT = "format"
SIZE = "size"
SHA256 = "sha256"
ROUND = "round"
METRIC_NAME = "metric_name"
METRIC_VALUE = "metric_value"
METRIC_MODE = "metric_mode"
STORED_AT = "stored_at"
FORK_VERSION = "fork_version"
BACKFILLED = "backfilled"
# what the server could not check about the stored bytes (backfill: the archive's member origin)
UNCHECKED = "unchecked"
# statement fields whose values the job's own server process reported (not checked by the server)
JOB_REPORTED = "job_reported"

# Extended key usage of the dedicated model-signing certificate (a UUID OID, ITU-T X.667:
# no registration needed). Only the root CA can issue a certificate with it; the server's
# TLS certificate (upstream provisioning) has no extended key usage at all.
MODEL_SIGNING_EKU = x509.ObjectIdentifier("2.25.144176614520210240459247089676341035149")
MODEL_SIGNING_EKU_NAME = "nvflare model signing"

STRONG_LINE = "strong: signed with the server's dedicated model-signing key"
WEAKER_REASON = (
    "signed with the server's TLS key, not a dedicated model-signing key; where the server's job processes can "
    "read that key (POC, kits run with the process launcher) any job's code could have signed this statement"
)

# upstream's provisioning puts the participant's role in the subject's unstructuredName
SERVER_ROLE = "server"

# what a refusal says failed (the first words of its message)
BAD_SIGNATURE = "bad signature"
NOT_THIS_PROJECT = "certificate not issued by this project's root CA"
NOT_A_SERVER = "certificate is not the project's server certificate"
BYTES_MISMATCH = "statement does not match the bytes"
OTHER_COMPONENT = "statement is for another component or job"
OTHER_SIGNER = "statement names another server or project"
MALFORMED = "malformed provenance"
NOT_SIGNED = "not signed"
WEAKER_REFUSED = "weaker signature refused"


class ProvenanceRefused(Exception):
    """A check failed; ``check`` is one of the constants above, str(e) the full reason."""

    def __init__(self, check: str, detail: str = ""):
        super().__init__(f"{check}: {detail}" if detail else check)
        self.check = check


def canonical(statement: dict) -> str:
    """The one text form that is signed: sorted keys, no whitespace, non-ASCII kept."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def make_statement(
    *,
    project: str,
    server: str,
    job_id: str,
    job_name: str,
    submitter: str,
    component: str,
    record: dict,
    stored_at: str,
    fork_version: str,
    unchecked=(),
    job_reported=(),
) -> dict:
    """The statement about one stored model, from its component record and the job.

    ``unchecked``: sentences saying what the server could not check about these bytes;
    ``job_reported``: the statement fields whose values came from the job's own server
    process (file name, format, round, metric; sha256 and size when the job hashed the file).
    """
    statement = {
        TYPE: STATEMENT_TYPE,
        PROJECT: project,
        SERVER: server,
        JOB_ID: job_id,
        JOB_NAME: job_name,
        SUBMITTER: submitter,
        COMPONENT: component,
        FILE_NAME: record.get(FILE_NAME),
        FORMAT: record.get(FORMAT) or "",
        SIZE: record.get(SIZE),
        SHA256: record.get(SHA256),
        STORED_AT: stored_at,
        FORK_VERSION: fork_version,
    }
    for key in (ROUND, METRIC_NAME, METRIC_VALUE, METRIC_MODE):
        if key in record:
            statement[key] = record[key]
    if record.get(BACKFILLED):
        statement[BACKFILLED] = True
    if unchecked:
        statement[UNCHECKED] = [str(u) for u in unchecked]
    reported = [k for k in job_reported if k in statement]
    if reported:
        statement[JOB_REPORTED] = reported
    return statement


def _name_attr(name: x509.Name, oid) -> str:
    attrs = name.get_attributes_for_oid(oid)
    return str(attrs[0].value) if attrs else ""


def common_name(name: x509.Name) -> str:
    return _name_attr(name, NameOID.COMMON_NAME)


def sign_statement(statement: dict, private_key_pem: bytes, certificate_pem: bytes) -> dict:
    """The provenance to store: statement text, signature, certificate, algorithm."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    text = canonical(statement)
    data = text.encode("utf-8")
    if isinstance(key, rsa.RSAPrivateKey):
        algorithm = RSA_PSS_SHA256
        signature = key.sign(data, _pss(), hashes.SHA256())
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = ECDSA_SHA256
        signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    else:
        raise ValueError(f"unsupported server key type {type(key).__name__}")
    return {
        STATEMENT: text,
        SIGNATURE: base64.b64encode(signature).decode("ascii"),
        CERTIFICATE: certificate_pem.decode("ascii") if isinstance(certificate_pem, bytes) else certificate_pem,
        ALGORITHM: algorithm,
    }


def _pss():
    # upstream's content padding (nvflare.lighter.utils._content_padding)
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)


def is_signed(provenance) -> bool:
    return isinstance(provenance, dict) and isinstance(provenance.get(STATEMENT), str) and SIGNATURE in provenance


def signer_summary(provenance) -> str:
    """``server (project)`` of a signed provenance, as the statement and certificate say; '' if unsigned.

    Unverified: for listings. Downloads and ``nvflare model verify`` verify. A weaker
    signature (the TLS key) and a statement that records what the server could not check
    say so after the name.
    """
    if not is_signed(provenance):
        return ""
    try:
        statement = json.loads(provenance[STATEMENT])
        summary = f"{statement.get(SERVER)} ({statement.get(PROJECT)})"
    except (ValueError, AttributeError):
        return "?"
    if signature_kind(provenance) != STRONG:
        summary += ", weaker: TLS key"
    if isinstance(statement, dict) and statement.get(UNCHECKED):
        summary += ", with unchecked origin"
    return summary


def unsigned_reason(provenance) -> str:
    """Why a component is not signed (no provenance at all: stored before signing, or not a model)."""
    if isinstance(provenance, dict) and isinstance(provenance.get(UNSIGNED), str):
        return provenance[UNSIGNED]
    return "no provenance was stored with it (stored before signing, or not a published model)"


def _load_cert(pem, what: str) -> x509.Certificate:
    try:
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        return x509.load_pem_x509_certificate(data)
    except (ValueError, TypeError, UnicodeError) as e:
        raise ProvenanceRefused(MALFORMED, f"{what} is not a PEM certificate ({e})") from None


def check_issued_by(cert: x509.Certificate, root: x509.Certificate) -> None:
    """ProvenanceRefused(NOT_THIS_PROJECT) unless ``root`` issued ``cert`` (name and signature)."""
    issuer, root_name = cert.issuer.rfc4514_string(), root.subject.rfc4514_string()
    if cert.issuer != root.subject:
        raise ProvenanceRefused(NOT_THIS_PROJECT, f"the certificate was issued by {issuer}, the root CA is {root_name}")
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        raise ProvenanceRefused(
            NOT_THIS_PROJECT, f"the certificate names {issuer} as issuer but that root CA's key did not sign it"
        ) from None


def _check_signature(cert: x509.Certificate, algorithm, data: bytes, signature: bytes) -> None:
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm == RSA_PSS_SHA256:
            key.verify(signature, data, _pss(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm == ECDSA_SHA256:
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            raise ProvenanceRefused(
                BAD_SIGNATURE, f"algorithm {algorithm!r} does not fit the certificate's {type(key).__name__}"
            )
    except InvalidSignature:
        raise ProvenanceRefused(
            BAD_SIGNATURE, f"the statement was not signed by the key of certificate {common_name(cert.subject)!r}"
        ) from None


STRONG = "strong"
WEAKER = "weaker"


def is_model_signing_certificate(cert: x509.Certificate) -> bool:
    """True if the root CA issued ``cert`` for model signing (the fork's EKU, not a CA)."""
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        pass
    return MODEL_SIGNING_EKU in list(usages)


def signature_kind(provenance) -> str:
    """STRONG or WEAKER, by the certificate a (verified) provenance carries; WEAKER when unreadable.

    Meaningful only for a provenance that verify_provenance accepted: the kind lives in the
    certificate the root CA issued, which a statement cannot change.
    """
    try:
        cert = _load_cert(provenance.get(CERTIFICATE), "the certificate")
    except (ProvenanceRefused, AttributeError):
        return WEAKER
    return STRONG if is_model_signing_certificate(cert) else WEAKER


def verify_provenance(
    provenance,
    root_ca_pem,
    sha256: str,
    size: int,
    component: Optional[str] = None,
    job_id: Optional[str] = None,
    server_identity: Optional[str] = None,
    require_strong: bool = False,
) -> dict:
    """The statement (a dict) if every check passes, else ProvenanceRefused saying which failed.

    Order: certificate chain, signature, then the statement's content - so a statement
    whose content does not match is reported as such only when it is genuinely signed.
    ``component``/``job_id`` are checked when given (a download knows what it asked for;
    an offline check of a renamed file does not). ``server_identity`` is the server's name
    as the admin kit knows it (fed_admin.json): upstream issues client sites' certificates
    from the same root CA and in the same shape as the server's (CN, O, no role), so only
    the name tells a site's key from the server's - without it a site could sign models.
    ``require_strong`` refuses, last, a statement that holds but was signed with the
    server's TLS key (WEAKER_REFUSED).
    """
    if not isinstance(provenance, dict):
        raise ProvenanceRefused(NOT_SIGNED, unsigned_reason(provenance))
    if not is_signed(provenance):
        if UNSIGNED in provenance:
            raise ProvenanceRefused(NOT_SIGNED, unsigned_reason(provenance))
        raise ProvenanceRefused(MALFORMED, "statement or signature missing")
    text = provenance[STATEMENT]
    try:
        signature = base64.b64decode(str(provenance[SIGNATURE]), validate=True)
    except (binascii.Error, ValueError):
        raise ProvenanceRefused(MALFORMED, "the signature is not base64") from None
    root = _load_cert(root_ca_pem, "the root CA")
    cert = _load_cert(provenance.get(CERTIFICATE), "the certificate")

    check_issued_by(cert, root)
    role = _name_attr(cert.subject, NameOID.UNSTRUCTURED_NAME)
    if role and role != SERVER_ROLE:
        raise ProvenanceRefused(
            NOT_A_SERVER, f"{common_name(cert.subject)!r} has role {role!r}; only the project's server signs models"
        )
    if server_identity is not None and common_name(cert.subject) != server_identity:
        raise ProvenanceRefused(
            NOT_A_SERVER, f"it was issued to {common_name(cert.subject)!r}, the project's server is {server_identity!r}"
        )
    _check_signature(cert, provenance.get(ALGORITHM), text.encode("utf-8"), signature)

    try:
        statement = json.loads(text)
    except ValueError:
        raise ProvenanceRefused(MALFORMED, "the signed statement is not JSON") from None
    if not isinstance(statement, dict) or statement.get(TYPE) != STATEMENT_TYPE:
        raise ProvenanceRefused(MALFORMED, f"the signed statement is not a {STATEMENT_TYPE} statement")
    server, project = common_name(cert.subject), common_name(root.subject)
    if statement.get(SERVER) != server or statement.get(PROJECT) != project:
        raise ProvenanceRefused(
            OTHER_SIGNER,
            f"statement names server {statement.get(SERVER)!r} of project {statement.get(PROJECT)!r}, "
            f"the certificate is server {server!r} of project {project!r}",
        )
    if statement.get(SHA256) != sha256 or statement.get(SIZE) != size:
        raise ProvenanceRefused(
            BYTES_MISMATCH,
            f"the statement says {statement.get(SIZE)} bytes with sha256 {statement.get(SHA256)}, "
            f"the file has {size} bytes with sha256 {sha256}",
        )
    if (component is not None and statement.get(COMPONENT) != component) or (
        job_id is not None and statement.get(JOB_ID) != job_id
    ):
        raise ProvenanceRefused(
            OTHER_COMPONENT,
            f"the statement is for {statement.get(COMPONENT)} of job {statement.get(JOB_ID)}, "
            f"this is {component if component is not None else '-'} of job {job_id if job_id is not None else '-'}",
        )
    if require_strong and not is_model_signing_certificate(cert):
        raise ProvenanceRefused(
            WEAKER_REFUSED, f"strong provenance is required and this one is {WEAKER}: {WEAKER_REASON}"
        )
    return statement


def unchecked_of(statement: dict) -> list:
    """What the server recorded it could not check about the bytes (backfill), as sentences."""
    found = statement.get(UNCHECKED) if isinstance(statement, dict) else None
    return [str(u) for u in found] if isinstance(found, list) else []


def signer_line(statement: dict) -> str:
    return f"signature verified (server {statement.get(SERVER)}, project {statement.get(PROJECT)})"


def kind_notes(statement: dict, kind: str) -> list:
    """What a reader must know about a verified statement: its kind (and why weaker), what was not checked."""
    notes = [STRONG_LINE if kind == STRONG else f"{WEAKER}: {WEAKER_REASON}"]
    unchecked = unchecked_of(statement)
    if unchecked:
        notes.append("unchecked: " + "; ".join(unchecked))
    return notes


def verified_line(statement: dict, kind: str) -> str:
    """The one line a verified statement gets: who signed, which kind and why, what was not checked."""
    return "; ".join([signer_line(statement)] + kind_notes(statement, kind))


def proof_document(provenance: dict) -> str:
    """The ``<file>.provenance.json`` that travels with a downloaded model (pretty, but the statement is verbatim)."""
    keep = {k: provenance[k] for k in (STATEMENT, SIGNATURE, CERTIFICATE, ALGORITHM) if k in provenance}
    return json.dumps(keep, indent=2, sort_keys=True) + "\n"


PROOF_SUFFIX = ".provenance.json"
