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
"""``nvflare fork signing-key``: give an existing server its model-signing key without moving the root CA key.

The three steps happen on two machines, like upstream's ``nvflare cert csr / sign``:

* on the server: ``request <server workspace>`` makes the key in ``<workspace>/signing/``
  (mode 0600, never leaves the server) and a certificate request naming the server;
* on the provisioning machine (the only one holding the root CA key):
  ``sign <request> --ca <ca folder> --server <name>`` issues the certificate
  (lighter/impl/model_signing.py), for exactly the server name the operator confirms;
* on the server: ``install <server workspace> <certificate>`` checks it against the kit's
  own ``rootCA.pem``, its TLS name and the key, and puts it beside the key.

``install <server workspace> --from <prod_NN>/<server>.model-signing`` installs what
``nvflare provision`` issued (ModelSigningBuilder). The server uses the key only where its
job processes cannot read it (model_signing_key); ``install`` warns where that is not so.
Exit codes: 0 done, 1 refused (the message says why; nothing was written), 2 bad arguments.
"""

import json
import os
import sys

CMD = "signing-key"
CSR_FILE = "model_signing.csr"
EXIT_REFUSED = 1
EXIT_USAGE = 2


class Refused(Exception):
    pass


def define(sub) -> None:
    """Add ``signing-key`` and its subcommands to the ``nvflare fork`` subparsers."""
    p = sub.add_parser(CMD, help="issue and install the server's dedicated model-signing key")
    steps = p.add_subparsers(title="signing-key steps", metavar="", dest="signing_key_cmd")
    r = steps.add_parser("request", help="on the server: make the key and a certificate request")
    r.add_argument("workspace", help="the server's workspace (its kit folder, holding startup/)")
    r.add_argument("--dir", help="where to keep the key (default: <workspace>/signing)")
    r.add_argument("--force", action="store_true", help="replace an existing key")
    s = steps.add_parser("sign", help="on the provisioning machine: issue the certificate for a request")
    s.add_argument("request", help="the request file (model_signing.csr)")
    s.add_argument(
        "--ca",
        required=True,
        help="the root CA: a folder with rootCA.pem and rootCA.key (nvflare cert init), or the provisioning "
        "state folder with cert.json (<provision workspace>/<project>/state)",
    )
    s.add_argument("--server", required=True, help="the server's name, which the request must carry")
    s.add_argument("--out", help="the certificate to write (default: model_signing.crt beside the request)")
    s.add_argument("--days", type=int, default=None, help="validity in days (default 360, never beyond the root CA)")
    i = steps.add_parser("install", help="on the server: install the certificate (or a provisioned key pair)")
    i.add_argument("workspace", help="the server's workspace (its kit folder, holding startup/)")
    i.add_argument("certificate", nargs="?", help="the certificate that sign wrote")
    i.add_argument("--from", dest="source", help="a folder <server>.model-signing from nvflare provision")
    i.add_argument("--dir", help="where the key is kept (default: <workspace>/signing)")


def _key_dir(workspace: str, given) -> str:
    from nvflare.app_common.model_publishing.model_signing_key import key_dir

    return key_dir(os.path.abspath(workspace), given)


def _server_identity(workspace: str) -> tuple:
    """(name, org) from the server's TLS certificate in the kit."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from nvflare.app_common.model_publishing.model_signing_key import server_key_files

    cert_path = server_key_files(os.path.join(workspace, "startup"))[1]
    try:
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except (OSError, ValueError) as e:
        raise Refused(f"{workspace} is not a provisioned server kit: cannot read its certificate {cert_path} ({e})")
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return (cn[0].value if cn else ""), (orgs[0].value if orgs else None)


def request(workspace: str, folder=None, force: bool = False) -> str:
    from cryptography.hazmat.primitives import serialization

    from nvflare.app_common.model_publishing.model_signing_key import KEY_FILE
    from nvflare.lighter.impl.model_signing import (
        key_pem,
        make_private_dir,
        make_request,
        new_private_key,
        write_private,
    )

    server, org = _server_identity(workspace)
    folder = _key_dir(workspace, folder)
    key_path = os.path.join(folder, KEY_FILE)
    if os.path.exists(key_path) and not force:
        raise Refused(f"{key_path} exists; pass --force to replace it (models it signed keep verifying)")
    make_private_dir(folder)
    key = new_private_key()
    csr = make_request(key, server, org)
    write_private(key_path, key_pem(key))
    csr_path = os.path.join(folder, CSR_FILE)
    write_private(csr_path, csr.public_bytes(serialization.Encoding.PEM), 0o644)
    return csr_path


def _load_root(ca: str) -> tuple:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    state = os.path.join(ca, "cert.json")
    try:
        if os.path.isfile(state):
            with open(state) as f:
                content = json.load(f)
            cert_pem, key_pem = content["root_cert"].encode("ascii"), content["root_pri_key"].encode("ascii")
        else:
            with open(os.path.join(ca, "rootCA.pem"), "rb") as f:
                cert_pem = f.read()
            with open(os.path.join(ca, "rootCA.key"), "rb") as f:
                key_pem = f.read()
        return x509.load_pem_x509_certificate(cert_pem), serialization.load_pem_private_key(key_pem, password=None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise Refused(
            f"cannot load the root CA from {ca} (rootCA.pem + rootCA.key, or a provisioning state cert.json): {e}"
        )


def sign(request_path: str, ca: str, server: str, out=None, days=None) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    from nvflare.app_common.model_publishing.model_signing_key import CERT_FILE
    from nvflare.lighter.impl.model_signing import DEFAULT_VALID_DAYS, issue_certificate, write_private

    try:
        with open(request_path, "rb") as f:
            csr = x509.load_pem_x509_csr(f.read())
    except (OSError, ValueError) as e:
        raise Refused(f"cannot read the request {request_path}: {e}")
    if not csr.is_signature_valid:
        raise Refused(f"{request_path}: the request's signature does not verify (it was changed)")
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = cn[0].value if cn else ""
    if name != server:
        raise Refused(f"{request_path} asks for {name!r}, not for server {server!r}: not signed")
    orgs = csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    root_cert, root_key = _load_root(ca)
    try:
        cert = issue_certificate(
            csr.public_key(), server, orgs[0].value if orgs else None, root_cert, root_key, days or DEFAULT_VALID_DAYS
        )
    except ValueError as e:
        raise Refused(str(e))
    out = out or os.path.join(os.path.dirname(os.path.abspath(request_path)), CERT_FILE)
    write_private(out, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return out


def install(workspace: str, certificate=None, source=None, folder=None) -> tuple:
    """(key folder, the server's judgement line); Refused when the pair would not sign strongly."""
    from nvflare.app_common.model_publishing.model_signing_key import (
        CERT_FILE,
        KEY_FILE,
        certificate_problem,
        folder_problem,
    )
    from nvflare.lighter.impl.model_signing import make_private_dir, write_private

    if bool(certificate) == bool(source):
        raise Refused("give either the certificate that sign wrote or --from <server>.model-signing")
    workspace = os.path.abspath(workspace)
    _server_identity(workspace)
    folder = _key_dir(workspace, folder)
    where = folder_problem(folder, workspace)
    if where:
        raise Refused(f"{where}: job processes can read it; choose another --dir")
    key_path, cert_path = os.path.join(folder, KEY_FILE), os.path.join(folder, CERT_FILE)
    new_key = os.path.join(source, KEY_FILE) if source else key_path
    new_cert = os.path.join(source, CERT_FILE) if source else certificate
    problem = certificate_problem(new_key, new_cert, os.path.join(workspace, "startup"))
    if problem:
        raise Refused(problem)
    make_private_dir(folder)
    if source:
        with open(new_key, "rb") as f:
            write_private(key_path, f.read())
    if os.path.abspath(new_cert) != os.path.abspath(cert_path):
        with open(new_cert, "rb") as f:
            write_private(cert_path, f.read(), 0o644)
    csr = os.path.join(folder, CSR_FILE)
    if os.path.exists(csr):
        os.unlink(csr)
    return folder


def handle(args) -> int:
    step = getattr(args, "signing_key_cmd", None)
    try:
        if step == "request":
            csr = request(args.workspace, args.dir, args.force)
            print(f"model-signing key made in {os.path.dirname(csr)} (mode 0600; it never leaves this server)")
            print(f"request: {csr}")
            print(
                "next: on the provisioning machine, nvflare fork signing-key sign <request> --ca <root CA folder> "
                "--server <this server's name>; then here: nvflare fork signing-key install <workspace> <certificate>"
            )
        elif step == "sign":
            if args.days is not None and args.days <= 0:
                print(f"--days must be a positive number of days, got {args.days}", file=sys.stderr)
                return EXIT_USAGE
            out = sign(args.request, args.ca, args.server, args.out, args.days)
            print(f"model-signing certificate for {args.server}: {out}")
        elif step == "install":
            folder = install(args.workspace, args.certificate, args.source, args.dir)
            print(f"model-signing key and certificate installed in {folder}")
            print(
                "the server uses them (strong signatures) only where its job processes cannot read that folder: job "
                "processes in containers (DockerJobLauncher, K8sJobLauncher) and the folder never mounted into a job "
                "container; with the process launcher remove the folder from this host. Restart the server; its log "
                "says which key it signs with"
            )
        else:
            print("usage: nvflare fork signing-key {request,sign,install} ...", file=sys.stderr)
            return EXIT_USAGE
    except Refused as e:
        print(f"refused: {e}", file=sys.stderr)
        return EXIT_REFUSED
    return 0
