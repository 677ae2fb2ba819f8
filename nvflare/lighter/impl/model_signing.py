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
"""The server's dedicated model-signing key and certificate, issued by the project's root CA.

A strong model signature needs a key no job can read (model_signing_key); the TLS key in
``startup/`` is read by every job process. So provisioning issues a second key pair for
the server whose certificate carries the fork's model-signing extended key usage
(model_provenance.MODEL_SIGNING_EKU) and nothing else: it cannot serve TLS, and the TLS
certificate cannot pass for it.

``ModelSigningBuilder`` (listed after CertBuilder in project.yml) writes it *beside* the
server's kit, in ``<prod_NN>/<server>.model-signing/``, not into the kit: a kit run with
the process launcher would hand the key to every job. The operator installs it on the
server only where job processes run in containers (``nvflare fork signing-key install``).
Nothing is issued for POC systems: every process there runs as one user on one host.

For kits provisioned before, the same certificate comes from a request made on the server
and signed where the root CA key is (``nvflare fork signing-key request / sign / install``,
nvflare/tool/fork/signing_key_cli.py), so the root CA key never leaves the provisioning machine.
"""

import datetime
import os
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from nvflare.apis.utils.model_provenance import MODEL_SIGNING_EKU
from nvflare.app_common.model_publishing.model_signing_key import CERT_FILE, KEY_FILE
from nvflare.lighter.spec import Builder

FOLDER_SUFFIX = ".model-signing"
DEFAULT_VALID_DAYS = 360
README = "README.txt"

_README_TEXT = """\
The model-signing key and certificate of server {server} (project {project}).

Install them ONLY on a server whose job processes run in containers (DockerJobLauncher,
K8sJobLauncher): with the process launcher (POC, a kit started with start.sh) every job
can read any file the server can, and whoever reads {key} can sign models as strong.

    nvflare fork signing-key install <server workspace> --from <this folder>

copies both into <server workspace>/signing/ (mode 0600), which the container launchers
never mount into a job container or pod. Never mount that folder into a job container.
See docs/provenance.md of the nvflare model fork.
"""


def new_private_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def subject_name(server: str, org: str = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, server)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def make_request(key, server: str, org: str = None) -> x509.CertificateSigningRequest:
    return x509.CertificateSigningRequestBuilder().subject_name(subject_name(server, org)).sign(key, hashes.SHA256())


def issue_certificate(
    public_key, server: str, org, root_cert: x509.Certificate, root_key, valid_days: int = DEFAULT_VALID_DAYS
) -> x509.Certificate:
    """The model-signing certificate for ``server``'s ``public_key``, signed by the root CA.

    Valid for ``valid_days`` but never beyond the root CA. Key usage: digital signature and
    content commitment only; extended key usage: model signing only.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    if root_cert.not_valid_after_utc <= now:
        raise ValueError(f"the root CA expired at {root_cert.not_valid_after_utc.isoformat()}")
    not_after = min(now + datetime.timedelta(days=valid_days), root_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject_name(server, org))
        .issuer_name(root_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([MODEL_SIGNING_EKU]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )


def write_private(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` atomically, created with ``mode`` (never readable by others in between)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", dir=folder)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def make_private_dir(folder: str) -> None:
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)


class ModelSigningBuilder(Builder):
    """Issue the server's model-signing key and certificate into ``<prod_NN>/<server>.model-signing/``.

    Args:
        valid_days: validity of the certificate (never beyond the root CA's).
    """

    def __init__(self, valid_days: int = DEFAULT_VALID_DAYS):
        if isinstance(valid_days, bool) or not isinstance(valid_days, int) or valid_days <= 0:
            raise ValueError(f"valid_days must be a positive integer, got {valid_days!r}")
        self.valid_days = valid_days

    def build(self, project, ctx):
        from nvflare.lighter.constants import CtxKey, ProvisionMode

        if ctx.get_provision_mode() == ProvisionMode.POC:
            return  # one user on one host: there is nowhere to keep it from the jobs
        server = project.get_server()
        root_cert, root_key = ctx.get(CtxKey.ROOT_CERT), ctx.get(CtxKey.ROOT_PRI_KEY)
        if server is None:
            return
        if root_cert is None or root_key is None:
            ctx.error(
                "ModelSigningBuilder must come after CertBuilder in project.yml's builders (it needs the root CA)"
            )
            return
        folder = os.path.join(ctx.get_wip_dir(), server.name + FOLDER_SUFFIX)
        make_private_dir(folder)
        key = new_private_key()
        cert = issue_certificate(key.public_key(), server.name, server.org, root_cert, root_key, self.valid_days)
        write_private(os.path.join(folder, KEY_FILE), key_pem(key))
        write_private(os.path.join(folder, CERT_FILE), cert.public_bytes(serialization.Encoding.PEM), 0o644)
        text = _README_TEXT.format(server=server.name, project=project.name, key=KEY_FILE)
        write_private(os.path.join(folder, README), text.encode("utf-8"), 0o644)
        ctx.info(
            f"Model-signing key of {server.name} in {server.name}{FOLDER_SUFFIX}/ (beside its kit): install it only "
            f"where job processes run in containers (nvflare fork signing-key install)"
        )
