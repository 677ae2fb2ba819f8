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
"""Which key the server signs models with: the dedicated model-signing key only where no job can read it.

A strong signature is worth exactly as much as the secrecy of its key. Under FLARE's
default policy (``byoc: any``) a job's own code runs in the job's server process; with the
process launcher that process runs as the server's OS user on the server's filesystem and
can read every file the server parent can (the TLS key in ``startup/``, and a signing key
anywhere else on the host). So the server parent uses the dedicated key only when every
one of these holds, checked once when the server starts:

1. a key and certificate are installed: ``model_signing.key`` and ``model_signing.crt`` in
   ``model_signing_key_dir`` (default ``<workspace>/signing``, a sibling of ``startup/``);
2. every job launcher of the server parent runs job processes where that folder is not
   visible: upstream's DockerJobLauncher (job containers see a tmpfs workspace with only
   ``startup/``, ``local/`` and their own run folder mounted) and K8sJobLauncher (job pods
   get ``startup/`` as a Secret and ``local/`` plus their run folder by transfer), their
   subclasses, or a launcher class the operator lists in ``model_signing_isolated_launchers``
   (the operator's word that its job processes cannot read the folder);
3. the folder is none of the folders those launchers hand to jobs: not the workspace root,
   not inside ``startup/`` or ``local/``, not inside a job's run folder;
4. the key file is readable by its owner only (mode 0600 or stricter);
5. the certificate is the dedicated kind (model_provenance.MODEL_SIGNING_EKU) issued by the
   server's own ``startup/rootCA.pem`` to the server's name (its TLS certificate's CN), is
   currently valid, and belongs to the key.

Otherwise the server signs with its TLS key, which a verifier judges weaker by the
certificate alone; the startup line says which rule failed and what to change. A key
present where jobs can read it is reported as exposed (every job can sign strong
statements with it): it must be removed from that host.
"""

import datetime
import json
import os
import re
import stat
from dataclasses import dataclass
from typing import Optional, Sequence

from nvflare.apis.fl_constant import SystemConfigs
from nvflare.fuel.utils.config_service import ENV_VAR_PREFIX, ConfigService

FED_SERVER_CONFIG = "fed_server.json"
DEFAULT_KEY = "server.key"
DEFAULT_CERT = "server.crt"

KEY_DIR = "model_signing_key_dir"
ISOLATED_LAUNCHERS = "model_signing_isolated_launchers"

DEFAULT_DIR_NAME = "signing"
KEY_FILE = "model_signing.key"
CERT_FILE = "model_signing.crt"

# Launchers whose job processes do not see the server's workspace beyond what they mount.
CONTAINER_LAUNCHERS = (
    "nvflare.app_opt.job_launcher.docker_launcher.DockerJobLauncher",
    "nvflare.app_opt.job_launcher.k8s_launcher.K8sJobLauncher",
)
# Workspace folders the container launchers give every job (read-only).
JOB_VISIBLE_FOLDERS = ("startup", "local")
_JOB_ID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")

DEDICATED = "dedicated"
TLS = "tls"


@dataclass(frozen=True)
class SigningKey:
    """The key the server signs with, and the line that says why (logged at startup)."""

    kind: str  # DEDICATED or TLS
    key_path: str
    cert_path: str
    message: str
    warn: bool  # log as a warning (the operator has something to change)

    @property
    def dedicated(self) -> bool:
        return self.kind == DEDICATED


def env_var_name(name: str) -> str:
    return (ENV_VAR_PREFIX + name).upper()


def _where(key: str) -> str:
    return f"{key} (server local/resources.json or env {env_var_name(key)})"


def load_key_dir_setting() -> Optional[str]:
    """model_signing_key_dir as configured (None: the default); ValueError naming the key if invalid."""
    value = os.environ.get(env_var_name(KEY_DIR))
    if value is None:
        section = ConfigService.get_section(SystemConfigs.RESOURCES_CONF) or {}
        value = section.get(KEY_DIR) if isinstance(section, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"invalid {_where(KEY_DIR)}: {value!r} must be a directory path")
    return value.strip()


def load_isolated_launchers() -> tuple:
    """model_signing_isolated_launchers (class paths); ValueError naming the key if invalid."""
    value = os.environ.get(env_var_name(ISOLATED_LAUNCHERS))
    if value is not None:
        try:
            value = json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v.strip()]
        except ValueError as e:
            raise ValueError(f"invalid {_where(ISOLATED_LAUNCHERS)}: {value!r} is not a JSON list: {e}") from None
    else:
        section = ConfigService.get_section(SystemConfigs.RESOURCES_CONF) or {}
        value = section.get(ISOLATED_LAUNCHERS) if isinstance(section, dict) else None
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and "." in v.strip() for v in value):
        raise ValueError(f"invalid {_where(ISOLATED_LAUNCHERS)}: {value!r} must be a list of launcher class paths")
    return tuple(v.strip() for v in value)


def key_dir(workspace_root: str, setting: Optional[str]) -> str:
    """The folder holding the dedicated key (a relative setting is relative to the workspace)."""
    folder = setting or DEFAULT_DIR_NAME
    return os.path.normpath(folder if os.path.isabs(folder) else os.path.join(workspace_root, folder))


def _class_paths(obj) -> set:
    return {f"{c.__module__}.{c.__qualname__}" for c in type(obj).__mro__}


def launcher_problem(launchers: Sequence, isolated: Sequence[str]) -> Optional[str]:
    """Why job processes may read the key folder (a launcher that runs them on this filesystem), or None."""
    trusted = set(CONTAINER_LAUNCHERS) | set(isolated)
    if not launchers:
        return "the server has no job launcher to judge"
    open_ones = sorted({type(x).__name__ for x in launchers if not (_class_paths(x) & trusted)})
    if open_ones:
        return (
            f"job processes started by {', '.join(open_ones)} run as this server's OS user on this server's "
            f"filesystem and can read every file the server can"
        )
    return None


def folder_problem(folder: str, workspace_root: str) -> Optional[str]:
    """Why ``folder`` is among what the container launchers hand to jobs, or None."""
    real, root = os.path.realpath(folder), os.path.realpath(workspace_root)
    if real == root:
        return f"{folder} is the workspace root itself"
    rel = os.path.relpath(real, root)
    if rel.startswith(os.pardir + os.sep) or rel == os.pardir:
        return None  # outside the workspace
    first = rel.split(os.sep, 1)[0]
    if first in JOB_VISIBLE_FOLDERS:
        return f"{folder} is inside the workspace's {first}/, which every job process gets"
    if _JOB_ID.fullmatch(first):
        return f"{folder} is inside job {first}'s run folder"
    return None


def server_key_files(startup_dir: str) -> tuple:
    """(key path, certificate path) the server's startup kit names (paths may not exist)."""
    key_name, cert_name = DEFAULT_KEY, DEFAULT_CERT
    try:
        with open(os.path.join(startup_dir, FED_SERVER_CONFIG)) as f:
            servers = json.load(f).get("servers") or []
        first = servers[0] if servers and isinstance(servers[0], dict) else {}
        key_name = first.get("ssl_private_key") or key_name
        cert_name = first.get("ssl_cert") or cert_name
    except (OSError, ValueError, AttributeError):
        pass
    return os.path.join(startup_dir, key_name), os.path.join(startup_dir, cert_name)


def certificate_problem(key_path: str, cert_path: str, startup_dir: str) -> Optional[str]:
    """Why the installed key/certificate cannot sign strongly (5.), or None."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from nvflare.apis.utils.model_provenance import (
        MODEL_SIGNING_EKU_NAME,
        ProvenanceRefused,
        check_issued_by,
        common_name,
        is_model_signing_certificate,
    )

    try:
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except (OSError, ValueError, TypeError) as e:
        return f"cannot load {key_path} / {cert_path}: {e}"
    if not is_model_signing_certificate(cert):
        return f"{cert_path} is not a model-signing certificate (no {MODEL_SIGNING_EKU_NAME!r} extended key usage)"
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.PEM, pub) != cert.public_key().public_bytes(
        serialization.Encoding.PEM, pub
    ):
        return f"{key_path} is not the key of {cert_path}"
    try:
        with open(os.path.join(startup_dir, "rootCA.pem"), "rb") as f:
            root = x509.load_pem_x509_certificate(f.read())
        check_issued_by(cert, root)
    except ProvenanceRefused as e:
        return f"{cert_path}: {e}"
    except (OSError, ValueError) as e:
        return f"cannot check {cert_path} against startup/rootCA.pem: {e}"
    try:
        with open(server_key_files(startup_dir)[1], "rb") as f:
            server = common_name(x509.load_pem_x509_certificate(f.read()).subject)
    except (OSError, ValueError) as e:
        return f"cannot read the server's TLS certificate to learn its name: {e}"
    if common_name(cert.subject) != server:
        return f"{cert_path} was issued to {common_name(cert.subject)!r}, this server is {server!r}"
    now = datetime.datetime.now(datetime.timezone.utc)
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        return (
            f"{cert_path} is valid from {cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}, "
            f"not today: issue a new one (docs/provenance.md)"
        )
    return None


def choose_signing_key(
    workspace_root: str,
    startup_dir: str,
    launchers: Sequence,
    dir_setting: Optional[str] = None,
    isolated: Sequence[str] = (),
) -> SigningKey:
    """The key this server parent signs models with, judged by the module's rules."""
    tls_key, tls_cert = server_key_files(startup_dir)
    folder = key_dir(workspace_root, dir_setting)
    key_path, cert_path = os.path.join(folder, KEY_FILE), os.path.join(folder, CERT_FILE)
    weaker = (
        "Model provenance is weaker on this server: models are signed with its TLS key "
        f"({tls_key}), which a verifier reports as weaker"
    )
    have_key, have_cert = os.path.isfile(key_path), os.path.isfile(cert_path)
    readable = launcher_problem(launchers, isolated)

    def tls(why: str, warn: bool = True) -> SigningKey:
        return SigningKey(TLS, tls_key, tls_cert, f"{weaker}: {why}", warn)

    if not have_key and not have_cert:
        if readable:
            return tls(
                f"{readable}. To sign strongly, run job processes in containers (DockerJobLauncher, K8sJobLauncher) "
                f"and install a model-signing key in {folder} (docs/provenance.md)"
            )
        return tls(f"no model-signing key is installed in {folder} ({KEY_FILE}, {CERT_FILE}; docs/provenance.md)")
    if readable:
        return tls(
            f"the model-signing key in {folder} is NOT used: {readable}. Any job can read that key and sign statements "
            f"that verify as strong: remove {folder} from this host and keep it only where job processes run in "
            f"containers (DockerJobLauncher, K8sJobLauncher)"
        )
    if not (have_key and have_cert):
        return tls(
            f"{folder} must hold both {KEY_FILE} and {CERT_FILE}; it has only {KEY_FILE if have_key else CERT_FILE}"
        )
    where = folder_problem(folder, workspace_root)
    if where:
        return tls(
            f"the model-signing key is NOT used: {where}; set {KEY_DIR} to a folder no job container mounts "
            f"(default: <workspace>/{DEFAULT_DIR_NAME})"
        )
    mode = stat.S_IMODE(os.stat(key_path).st_mode)
    if mode & 0o077:
        return tls(
            f"the model-signing key is NOT used: {key_path} is readable by others (mode {mode:04o}): chmod 600 it"
        )
    problem = certificate_problem(key_path, cert_path, startup_dir)
    if problem:
        return tls(f"the model-signing key is NOT used: {problem}")
    return SigningKey(
        DEDICATED,
        key_path,
        cert_path,
        f"Model provenance: models are signed with the dedicated model-signing key {key_path}; "
        f"job processes ({', '.join(sorted({type(x).__name__ for x in launchers}))}) cannot read {folder}",
        False,
    )
