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
"""Containers and VMs run the fork: provisioned docker and cloud kits, and the repo's
Dockerfile, install it.

Behaviour test of patches/docker-builder-generated-images-install-the-fork-wheel.patch,
patches/aws-builder-vms-install-the-fork-wheel-shipped-in-the-kit.patch and
patches/azure-builder-vms-install-the-fork-wheel-shipped-in-the-kit.patch: a real
`nvflare provision` with upstream's builders must produce a Dockerfile and VM start scripts
that install the fork wheel shipped in the kit (upstream's say `pip install nvflare`). No
docker engine or cloud runs here, so the install step runs as the plain shell script it
is, in a venv, and the VM scripts are checked as text and by `bash -n`.
"""

import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

NVFLARE = str(Path(sys.executable).parent / "nvflare")
SCRIPT = "install_nvflare_fork.sh"
WHEEL = "nvflare-2.9.0+model.1-py3-none-any.whl"


def provision(root: Path, builders: list) -> Path:
    project = {
        "api_version": 3,
        "name": "dockerproj",
        "description": "fork docker kit",
        "participants": [
            {"name": "server1", "type": "server", "org": "nvidia", "fed_learn_port": 8002},
            {"name": "site-1", "type": "client", "org": "nvidia"},
            {"name": "admin@nvidia.com", "type": "admin", "org": "nvidia", "role": "project_admin"},
        ],
        "builders": [
            {
                "path": "nvflare.lighter.impl.workspace.WorkspaceBuilder",
                "args": {"template_file": ["master_template.yml"]},
            },
            {"path": "nvflare.lighter.impl.static_file.StaticFileBuilder", "args": {"config_folder": "config"}},
            *builders,
            {"path": "nvflare.lighter.impl.cert.CertBuilder"},
            {"path": "nvflare.lighter.impl.signature.SignatureBuilder"},
        ],
    }
    (root / "project.yml").write_text(yaml.safe_dump(project))
    proc = subprocess.run(
        [NVFLARE, "provision", "-p", "project.yml", "-w", "ws"], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root / "ws" / "dockerproj" / "prod_00"


@pytest.fixture(scope="module")
def compose_dir(tmp_path_factory):
    prod = provision(
        tmp_path_factory.mktemp("provision"),
        [{"path": "nvflare.lighter.impl.docker.DockerBuilder", "args": {"base_image": "python:3.11"}}],
    )
    return prod / "nvflare_compose"


@pytest.fixture(scope="module")
def cloud_kits(tmp_path_factory):
    return provision(
        tmp_path_factory.mktemp("provision-cloud"),
        [{"path": "nvflare.lighter.impl.aws.AWSBuilder"}, {"path": "nvflare.lighter.impl.azure.AzureBuilder"}],
    )


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory):
    env_dir = tmp_path_factory.mktemp("container-venv")
    venv.create(env_dir, with_pip=True)
    return env_dir / "bin" / "python"


def test_generated_dockerfile_installs_the_fork(compose_dir):
    text = (compose_dir / "Dockerfile").read_text()
    assert "RUN pip install nvflare\n" not in text
    assert text.splitlines() == [
        "FROM python:3.11",
        "RUN pip install -U pip",
        f"COPY {WHEEL} {SCRIPT} /tmp/nvflare-fork/",
        f"RUN sh /tmp/nvflare-fork/{SCRIPT} /tmp/nvflare-fork/{WHEEL} /etc/nvflare-constraints.txt && rm -rf /tmp/nvflare-fork",
        "ENV PIP_CONSTRAINT=/etc/nvflare-constraints.txt",
        "COPY requirements.txt requirements.txt",
        "RUN pip install -r requirements.txt",
    ]
    assert (compose_dir / SCRIPT).is_file()


def test_kit_wheel_has_the_fork_wheels_files(compose_dir, fork_wheel):
    with zipfile.ZipFile(fork_wheel) as original, zipfile.ZipFile(compose_dir / WHEEL) as rebuilt:
        want = {n: original.read(n) for n in original.namelist() if not n.endswith("/RECORD")}
        got = {n: rebuilt.read(n) for n in rebuilt.namelist() if not n.endswith("/RECORD")}
    assert got.keys() == want.keys()
    assert all(got[n] == want[n] for n in want)


def test_install_script_refuses_upstream_then_installs_and_pins_the_fork(
    compose_dir, fresh_python, upstream_wheel, tmp_path
):
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(fresh_python), "HOME": str(tmp_path)}
    constraints = tmp_path / "etc" / "nvflare-constraints.txt"
    proc = subprocess.run(
        ["sh", str(compose_dir / SCRIPT), str(upstream_wheel), str(constraints)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"install_nvflare_fork.sh: {upstream_wheel} installed nvflare 2.9.0, which is not the nvflare model fork"
    )
    assert not constraints.exists()

    proc = subprocess.run(
        ["sh", str(compose_dir / SCRIPT), str(compose_dir / WHEEL), str(constraints)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    assert constraints.read_text() == "nvflare==2.9.0+model.1\n"
    out = subprocess.run([str(fresh_python.parent / "nvflare"), "-V"], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "NVFlare version is 2.9.0+model.1"

    # A locally edited install is never shipped into images.
    site = subprocess.run(
        [str(fresh_python), "-c", "import nvflare, os; print(os.path.dirname(nvflare.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with open(Path(site) / "apis" / "storage.py", "a") as f:
        f.write("# local edit\n")
    proc = subprocess.run(
        [
            str(fresh_python),
            "-c",
            f"from nvflare.lighter.impl.fork_image import write_installed_wheel as w; w({str(tmp_path)!r})",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "RuntimeError: installed nvflare/apis/storage.py does not match its RECORD: reinstall nvflare 2.9.0+model.1"
    )
    assert list(tmp_path.glob("*.whl*")) == [], "no wheel, not even a partial one"


def test_repo_dockerfile_uses_the_same_install_script(repo):
    text = (repo / "docker" / "Dockerfile").read_text()
    assert f"COPY nvflare/lighter/impl/{SCRIPT} /tmp/nvflare-fork/" in text
    joined = re.sub(r"\\\n\s*", "", text)  # instructions with their continuation lines
    assert re.search(
        rf"\nRUN (\w+=\S+ )*sh /tmp/nvflare-fork/{SCRIPT} /tmp/nvflare-fork/nvflare-\*\.whl /etc/nvflare-constraints\.txt",
        joined,
    )
    assert "ENV PIP_CONSTRAINT=/etc/nvflare-constraints.txt" in text
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (repo / src).exists(), f"Dockerfile copies {src}, which the repo lacks"


@pytest.mark.parametrize("script", ["aws_start.sh", "azure_start.sh"])
@pytest.mark.parametrize("participant", ["server1", "site-1"])
def test_cloud_start_scripts_install_the_kit_wheel(cloud_kits, fork_wheel, participant, script):
    startup = cloud_kits / participant / "startup"
    text = (startup / script).read_text()
    vm_startup = {"aws_start.sh": "/var/tmp/cloud/startup", "azure_start.sh": "${DEST_FOLDER}/startup"}[script]
    assert re.search(rf"python3 -m pip install (--[\w-]+ )*{re.escape(vm_startup)}/{re.escape(WHEEL)} &&", text)
    assert not re.search(r"python3 -m pip install (--[\w-]+ )*nvflare &&", text), "no install from the index left"
    assert f"-r {vm_startup}/requirements.txt -c {vm_startup}/nvflare-constraints.txt" in text
    assert (startup / "nvflare-constraints.txt").read_text() == "nvflare==2.9.0+model.1\n"
    with zipfile.ZipFile(startup / WHEEL) as z, zipfile.ZipFile(fork_wheel) as original:
        assert z.read("nvflare/apis/storage.py") == original.read("nvflare/apis/storage.py")
    assert subprocess.run(["bash", "-n", str(startup / script)]).returncode == 0


def test_admin_kits_are_left_alone(cloud_kits):
    startup = cloud_kits / "admin@nvidia.com" / "startup"
    assert not list(startup.glob("*.whl")) and not (startup / "nvflare-constraints.txt").exists()
