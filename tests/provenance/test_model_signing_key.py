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
"""The dedicated model-signing key: issued by ``nvflare provision``, given to existing kits with
``nvflare fork signing-key``, and used by the server parent only where its job launchers keep it
from job processes (model_signing_key's rules, each with its exact startup line).

Kits come from the real ``nvflare provision`` (the fork's, and upstream 2.9.0's for an existing
deployment); launchers are upstream's real classes. Behaviour test for
provisioning-issue-the-server-s-model-signing-key-in-new-projects.patch: without it the
provisioned project has no ``server.model-signing`` folder.
"""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pki import CA, key_pem
from upstream_flare import upstream_kits, upstream_nvflare

from nvflare.apis.utils import model_provenance as mp
from nvflare.app_common.model_publishing import model_signing_key as msk

NVFLARE = str(Path(sys.executable).parent / "nvflare")
PROCESS = "nvflare.app_common.job_launcher.server_process_launcher.ServerProcessJobLauncher"


def run(*args, cwd, home, check=True):
    env = dict(os.environ, HOME=str(home), NVFLARE_POC_WORKSPACE=str(Path(home).parent / "poc"))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([NVFLARE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory):
    """A project provisioned by the fork's ``nvflare provision`` from the sample project.yml POC uses."""
    root = tmp_path_factory.mktemp("prov")
    home = root / "home"
    home.mkdir()
    run("poc", "prepare", "-n", "1", "--force", cwd=root, home=home)
    run("provision", "-p", str(root / "poc" / "project.yml"), "-w", str(root / "provisioned"), cwd=root, home=home)
    (prod,) = (root / "provisioned").glob("*/prod_00")
    return prod


def _cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def test_provision_issues_the_key_beside_the_server_kit_and_poc_gets_none(provisioned):
    folder = provisioned / "server.model-signing"
    assert sorted(p.name for p in folder.iterdir()) == ["README.txt", "model_signing.crt", "model_signing.key"]
    assert stat.S_IMODE(os.stat(folder / "model_signing.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    cert = _cert(folder / "model_signing.crt")
    assert mp.is_model_signing_certificate(cert) and mp.common_name(cert.subject) == "server"
    mp.check_issued_by(cert, _cert(provisioned / "server" / "startup" / "rootCA.pem"))
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert usage.critical and list(usage.value) == [mp.MODEL_SIGNING_EKU]  # not usable for TLS
    assert not mp.is_model_signing_certificate(_cert(provisioned / "server" / "startup" / "server.crt"))
    # nothing of it inside any kit (a kit run with the process launcher would hand it to every job)
    assert not [p for p in provisioned.rglob("model_signing*") if folder not in p.parents]
    # POC: one user on one host, nothing issued
    poc_prod = provisioned.parents[2] / "poc" / "example_project" / "prod_00"
    assert poc_prod.is_dir() and not list(poc_prod.parent.rglob("*.model-signing"))


# -- the server parent's choice ------------------------------------------------------------
@pytest.fixture
def workspace(provisioned, tmp_path):
    ws = tmp_path / "server"
    shutil.copytree(provisioned / "server", ws)
    return ws


def install_provisioned(provisioned, ws, folder=None):
    target = Path(folder or ws / "signing")
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in ("model_signing.key", "model_signing.crt"):
        shutil.copy2(provisioned / "server.model-signing" / name, target / name)
    return target


def launcher(kind):
    if kind == "process":
        from nvflare.app_common.job_launcher.server_process_launcher import ServerProcessJobLauncher

        return ServerProcessJobLauncher()
    if kind == "docker":
        from nvflare.app_opt.job_launcher.docker_launcher import ServerDockerJobLauncher

        return ServerDockerJobLauncher(workspace="/var/tmp/ws")
    if kind == "slurm":
        from nvflare.app_opt.job_launcher.slurm.launcher import ServerSlurmJobLauncher

        return ServerSlurmJobLauncher(
            workspace_path="/tmp/ws", sandbox="none", python_path="/usr/bin/python3", executables={}
        )
    raise ValueError(kind)


def choose(ws, kinds, **kw):
    return msk.choose_signing_key(str(ws), str(ws / "startup"), [launcher(k) for k in kinds], **kw)


WEAKER = "Model provenance is weaker on this server: models are signed with its TLS key ({key}), which a verifier reports as weaker: "


def weaker(ws, why):
    return WEAKER.format(key=ws / "startup" / "server.key") + why


def test_process_launcher_without_a_key_warns_what_to_change(workspace):
    chosen = choose(workspace, ["process"])
    assert (chosen.kind, chosen.key_path, chosen.warn) == (msk.TLS, str(workspace / "startup" / "server.key"), True)
    assert chosen.message == weaker(
        workspace,
        "job processes started by ServerProcessJobLauncher run as this server's OS user on this server's filesystem "
        "and can read every file the server can. To sign strongly, run job processes in containers "
        f"(DockerJobLauncher, K8sJobLauncher) and install a model-signing key in {workspace / 'signing'} "
        "(docs/provenance.md)",
    )


def test_process_launcher_never_uses_an_installed_key_and_says_it_is_exposed(provisioned, workspace):
    folder = install_provisioned(provisioned, workspace)
    for kinds in (["process"], ["docker", "process"], ["slurm"]):
        chosen = choose(workspace, kinds)
        assert chosen.kind == msk.TLS, kinds
        names = "ServerProcessJobLauncher" if "process" in kinds else "ServerSlurmJobLauncher"
        assert chosen.message == weaker(
            workspace,
            f"the model-signing key in {folder} is NOT used: job processes started by {names} run as this server's "
            "OS user on this server's filesystem and can read every file the server can. Any job can read that key "
            f"and sign statements that verify as strong: remove {folder} from this host and keep it only where job "
            "processes run in containers (DockerJobLauncher, K8sJobLauncher)",
        )


def test_container_launcher_with_the_key_outside_job_mounts_signs_strong(provisioned, workspace):
    folder = install_provisioned(provisioned, workspace)
    chosen = choose(workspace, ["docker"])
    assert (chosen.kind, chosen.key_path, chosen.warn) == (msk.DEDICATED, str(folder / "model_signing.key"), False)
    assert chosen.message == (
        f"Model provenance: models are signed with the dedicated model-signing key {folder / 'model_signing.key'}; "
        f"job processes (ServerDockerJobLauncher) cannot read {folder}"
    )
    # the operator may name another launcher class whose job processes cannot read the folder
    assert choose(workspace, ["process"], isolated=[PROCESS]).kind == msk.DEDICATED


def test_a_key_where_container_jobs_see_it_is_not_used(provisioned, workspace):
    for inside in ("startup/signing", "local", "0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f/x"):
        folder = install_provisioned(provisioned, workspace, workspace / inside)
        chosen = choose(workspace, ["docker"], dir_setting=inside)
        first = inside.split("/")[0]
        where = (
            f"inside the workspace's {first}/, which every job process gets"
            if first in ("startup", "local")
            else f"inside job {first}'s run folder"
        )
        assert chosen.message == weaker(
            workspace,
            f"the model-signing key is NOT used: {folder} is {where}; set model_signing_key_dir to a folder no job "
            "container mounts (default: <workspace>/signing)",
        ), inside
    install_provisioned(provisioned, workspace, workspace)
    assert choose(workspace, ["docker"], dir_setting=str(workspace)).message == weaker(
        workspace,
        f"the model-signing key is NOT used: {workspace} is the workspace root itself; set model_signing_key_dir to "
        "a folder no job container mounts (default: <workspace>/signing)",
    )


def test_key_readable_by_others_and_wrong_certificates_are_not_used(provisioned, workspace):
    folder = install_provisioned(provisioned, workspace)
    key, cert = folder / "model_signing.key", folder / "model_signing.crt"
    key.chmod(0o640)
    assert choose(workspace, ["docker"]).message == weaker(
        workspace, f"the model-signing key is NOT used: {key} is readable by others (mode 0640): chmod 600 it"
    )
    key.chmod(0o600)
    shutil.copy(workspace / "startup" / "server.crt", cert)  # the TLS certificate is not a signing certificate
    assert choose(workspace, ["docker"]).message == weaker(
        workspace,
        f"the model-signing key is NOT used: {cert} is not a model-signing certificate (no 'nvflare model signing' "
        "extended key usage)",
    )
    shutil.copy(provisioned / "server.model-signing" / "model_signing.crt", cert)
    key.write_bytes((workspace / "startup" / "server.key").read_bytes())
    assert choose(workspace, ["docker"]).message.endswith(f"NOT used: {key} is not the key of {cert}")
    # issued by another project's root CA, for the right name
    from nvflare.lighter.impl.model_signing import issue_certificate, new_private_key

    other = CA("example_project")
    new = new_private_key()
    key.write_bytes(key_pem(new))
    cert.write_bytes(
        issue_certificate(new.public_key(), "server", None, other.cert, other.key).public_bytes(
            serialization.Encoding.PEM
        )
    )
    assert choose(workspace, ["docker"]).message.endswith(
        f"NOT used: {cert}: certificate not issued by this project's root CA: the certificate names "
        "CN=example_project as issuer but that root CA's key did not sign it"
    )
    cert.unlink()
    assert choose(workspace, ["docker"]).message == weaker(
        workspace, f"{folder} must hold both model_signing.key and model_signing.crt; it has only model_signing.key"
    )


def test_settings_are_checked_with_the_key_named(monkeypatch):
    monkeypatch.setenv("NVFLARE_MODEL_SIGNING_ISOLATED_LAUNCHERS", '["ok.Launcher", 3]')
    with pytest.raises(ValueError) as e:
        msk.load_isolated_launchers()
    assert str(e.value) == (
        "invalid model_signing_isolated_launchers (server local/resources.json or env "
        "NVFLARE_MODEL_SIGNING_ISOLATED_LAUNCHERS): ['ok.Launcher', 3] must be a list of launcher class paths"
    )
    monkeypatch.setenv("NVFLARE_MODEL_SIGNING_ISOLATED_LAUNCHERS", f"{PROCESS}")
    assert msk.load_isolated_launchers() == (PROCESS,)
    monkeypatch.setenv("NVFLARE_MODEL_SIGNING_KEY_DIR", " ")
    with pytest.raises(ValueError) as e:
        msk.load_key_dir_setting()
    assert str(e.value) == (
        "invalid model_signing_key_dir (server local/resources.json or env NVFLARE_MODEL_SIGNING_KEY_DIR): ' ' must "
        "be a directory path"
    )


def test_a_bad_setting_is_announced_and_the_server_signs_weaker(workspace, monkeypatch):
    """What JobModelStore logs at startup (model_signer.announce) when a signing setting is invalid."""
    from nvflare.apis.fl_context import FLContext
    from nvflare.apis.workspace import Workspace
    from nvflare.app_common.model_publishing import model_signer

    class Engine:  # the server engine's one call announce makes
        def __init__(self, ws):
            self.ws = ws

        def get_workspace(self):
            return self.ws

    monkeypatch.setenv("NVFLARE_MODEL_SIGNING_KEY_DIR", " ")
    chosen = model_signer.announce(Engine(Workspace(str(workspace), "server")), FLContext())
    assert (chosen.kind, chosen.warn) == (msk.TLS, True)
    assert chosen.message == (
        "Model provenance is weaker on this server: invalid model_signing_key_dir (server local/resources.json or env "
        "NVFLARE_MODEL_SIGNING_KEY_DIR): ' ' must be a directory path"
    )


# -- an existing kit: request on the server, sign on the provisioning machine, install ---------
@pytest.fixture(scope="module")
def upstream_prod(upstream_wheel, tmp_path_factory):
    return upstream_kits(upstream_nvflare(upstream_wheel), tmp_path_factory.mktemp("upstream"))


def test_existing_upstream_kit_gets_a_key_without_the_root_ca_key_leaving_provisioning(upstream_prod, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    ws = tmp_path / "server"
    shutil.copytree(upstream_prod / "server", ws)
    state = upstream_prod.parent / "state"
    assert (state / "cert.json").is_file() and not list(ws.rglob("rootCA.key"))

    made = run("fork", "signing-key", "request", str(ws), cwd=tmp_path, home=home)
    csr = ws / "signing" / "model_signing.csr"
    assert made.stdout.splitlines()[:2] == [
        f"model-signing key made in {ws / 'signing'} (mode 0600; it never leaves this server)",
        f"request: {csr}",
    ]
    assert stat.S_IMODE(os.stat(ws / "signing" / "model_signing.key").st_mode) == 0o600
    again = run("fork", "signing-key", "request", str(ws), cwd=tmp_path, home=home, check=False)
    assert (again.returncode, again.stderr.strip()) == (
        1,
        f"refused: {ws / 'signing' / 'model_signing.key'} exists; pass --force to replace it (models it signed keep "
        "verifying)",
    )

    # the provisioning machine: the request travels there, the certificate comes back
    lab = tmp_path / "provisioning"
    lab.mkdir()
    shutil.copy(csr, lab / "model_signing.csr")
    wrong = run(
        "fork", "signing-key", "sign", str(lab / "model_signing.csr"), "--ca", str(state), "--server", "site-1",
        cwd=lab, home=home, check=False,
    )  # fmt: skip
    assert (wrong.returncode, wrong.stderr.strip()) == (
        1,
        f"refused: {lab / 'model_signing.csr'} asks for 'server', not for server 'site-1': not signed",
    )
    signed = run(
        "fork", "signing-key", "sign", str(lab / "model_signing.csr"), "--ca", str(state), "--server", "server",
        cwd=lab, home=home,
    )  # fmt: skip
    assert signed.stdout.strip() == f"model-signing certificate for server: {lab / 'model_signing.crt'}"

    # a certificate for another key (the provisioned one of another project) is refused at install
    other = tmp_path / "other.crt"
    other_ca = CA("example_project")
    from nvflare.lighter.impl.model_signing import issue_certificate, new_private_key

    other.write_bytes(
        issue_certificate(new_private_key().public_key(), "server", None, other_ca.cert, other_ca.key).public_bytes(
            serialization.Encoding.PEM
        )
    )
    bad = run("fork", "signing-key", "install", str(ws), str(other), cwd=tmp_path, home=home, check=False)
    assert bad.returncode == 1 and bad.stderr.strip() == (
        f"refused: {ws / 'signing' / 'model_signing.key'} is not the key of {other}"
    )
    done = run("fork", "signing-key", "install", str(ws), str(lab / "model_signing.crt"), cwd=tmp_path, home=home)
    assert done.stdout.splitlines()[0] == f"model-signing key and certificate installed in {ws / 'signing'}"
    assert sorted(p.name for p in (ws / "signing").iterdir()) == ["model_signing.crt", "model_signing.key"]
    assert choose(ws, ["docker"]).kind == msk.DEDICATED
    assert choose(ws, ["process"]).kind == msk.TLS


def test_install_from_a_provisioned_folder(provisioned, workspace, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    src = provisioned / "server.model-signing"
    done = run("fork", "signing-key", "install", str(workspace), "--from", str(src), cwd=tmp_path, home=home)
    assert done.returncode == 0
    assert stat.S_IMODE(os.stat(workspace / "signing" / "model_signing.key").st_mode) == 0o600
    inside = run(
        "fork", "signing-key", "install", str(workspace), "--from", str(src), "--dir", "local/k",
        cwd=tmp_path, home=home, check=False,
    )  # fmt: skip
    assert (inside.returncode, inside.stderr.strip()) == (
        1,
        f"refused: {workspace / 'local' / 'k'} is inside the workspace's local/, which every job process gets: job "
        "processes can read it; choose another --dir",
    )
