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
"""The fork's images work as the parent image and job-image base of k8s/docker deployments.

No Docker daemon runs here: the recipes are checked as text, and the image's install step
(the Dockerfile's own RUN line, with its build args) runs in a fresh venv from the fork
wheel and PyPI; then every module upstream's k8s and docker job launchers import - at
module level or inside launch_job - must import there.
"""

import ast
import json
import re
import shutil
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

LAUNCHER_MODULES = [
    "nvflare/app_opt/job_launcher/k8s_launcher.py",
    "nvflare/app_opt/job_launcher/docker_launcher.py",
    "nvflare/app_opt/job_launcher/workspace_cell_transfer.py",
    "nvflare/app_opt/job_launcher/study_runtime.py",
    "nvflare/app_opt/job_launcher/study_data.py",
]


def logical_lines(text: str) -> list:
    """Dockerfile instructions with their backslash continuations joined."""
    return [" ".join(part.strip() for part in block.split("\\\n")) for block in re.split(r"(?<!\\)\n", text)]


def final_stage(dockerfile: Path) -> list:
    lines = [line for line in logical_lines(dockerfile.read_text()) if line and not line.startswith("#")]
    start = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return lines[start:]


def arg_default(lines: list, name: str) -> str:
    (value,) = [line.split("=", 1)[1] for line in lines if line.startswith(f"ARG {name}=")]
    return value


@pytest.fixture(scope="module")
def fork_version(fork_build, repo):
    return fork_build.fork_version(json.loads((repo / "upstream.json").read_text()))


def test_image_is_labelled_with_the_fork_version(repo, fork_version):
    stage = final_stage(repo / "docker" / "Dockerfile")
    assert arg_default(stage, "NVFLARE_FORK_VERSION") == fork_version == "2.9.0+model.1"
    (label,) = [line for line in stage if line.startswith("LABEL ")]
    assert 'org.nvflare.fork.version="${NVFLARE_FORK_VERSION}"' in label
    assert 'org.opencontainers.image.version="${NVFLARE_FORK_VERSION}"' in label
    (install,) = [line for line in stage if "install_nvflare_fork.sh" in line and line.startswith("RUN ")]
    assert 'NVFLARE_FORK_VERSION="$NVFLARE_FORK_VERSION"' in install, "the label is checked against the wheel"


def test_image_runs_as_a_non_root_user_owning_the_workspace(repo):
    """Issue 22.5: the last USER is numeric and not root (Kubernetes' runAsNonRoot can check it)."""
    stage = final_stage(repo / "docker" / "Dockerfile")
    uid, gid = arg_default(stage, "NVFLARE_UID"), arg_default(stage, "NVFLARE_GID")
    assert uid.isdigit() and gid.isdigit() and int(uid) != 0 and int(gid) != 0
    users = [line for line in stage if line.startswith("USER ")]
    assert users == ["USER ${NVFLARE_UID}:${NVFLARE_GID}"]
    (setup,) = [line for line in stage if "useradd" in line]
    assert '--uid "$NVFLARE_UID" --gid "$NVFLARE_GID"' in setup
    assert "chown nvflare:nvflare /var/tmp/nvflare/workspace" in setup
    assert "chmod 1777 /var/tmp/nvflare/workspace" in setup, "the mode upstream's launcher gives the job tmpfs"
    assert stage.index(users[0]) > max(i for i, line in enumerate(stage) if line.startswith("RUN "))
    assert "WORKDIR /var/tmp/nvflare/workspace" in stage
    assert any("NVFLARE_USER=${NVFLARE_UID}:${NVFLARE_GID}" in line for line in stage if line.startswith("ENV "))


def test_image_installs_upstreams_k8s_extra(repo, upstream_wheel):
    stage = final_stage(repo / "docker" / "Dockerfile")
    (install,) = [line for line in stage if "install_nvflare_fork.sh" in line and line.startswith("RUN ")]
    assert install.startswith("RUN NVFLARE_EXTRAS=k8s ")
    with zipfile.ZipFile(upstream_wheel) as z:
        metadata = z.read("nvflare-2.9.0.dist-info/METADATA").decode()
    assert "Provides-Extra: k8s" in metadata
    assert 'Requires-Dist: kubernetes!=36.0.0; extra == "k8s"' in metadata


def test_job_image_recipe_builds_on_the_fork_image(repo):
    text = (repo / "docker" / "job-image.Dockerfile").read_text()
    lines = [line for line in logical_lines(text) if line and not line.startswith("#")]
    assert lines[0] == "ARG BASE_IMAGE=nvflare-fork:2.9.0-model.1"
    assert (
        "docker build -f docker/Dockerfile -t nvflare-fork:2.9.0-model.1 ."
        in (repo / "docker" / "Dockerfile").read_text()
    )
    assert lines[1] == "FROM ${BASE_IMAGE}"
    (run,) = [line for line in lines if line.startswith("RUN ")]
    assert run.startswith(
        "RUN --mount=type=bind,source=wheels,target=/tmp/wheels "
        "pip install --no-cache-dir --find-links /tmp/wheels ${FRAMEWORK} && python -c "
    )
    # the framework is installed as root, the image runs as the base's non-root user
    assert lines.index("USER root") < lines.index(run) < lines.index("USER ${NVFLARE_USER}") == len(lines) - 1
    assert (repo / "docker" / "wheels").is_dir()
    assert "'+model.' in v" in run, "the job image fails to build if nvflare is no longer the fork"
    assert not re.search(r"pip install[^&]*\bnvflare\b", run), "the recipe must not install nvflare again"
    assert "--build-arg FRAMEWORK=tensorflow-cpu" in text and 'FRAMEWORK="torch ' in text


def launcher_imports(site: Path) -> set:
    """Every absolute import in upstream's launcher modules, including those inside functions."""
    names = set()
    for rel in LAUNCHER_MODULES:
        tree = ast.parse((site / rel).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
                names.update(f"{node.module}:{alias.name}" for alias in node.names)
    return names


PROBE = """
import importlib, json, sys
failed = []
for name in json.loads(sys.argv[1]):
    module, _, attr = name.partition(":")
    try:
        m = importlib.import_module(module)
        if attr and not hasattr(m, attr):
            importlib.import_module(f"{module}.{attr}")
    except Exception as e:
        failed.append(f"{name}: {type(e).__name__}: {e}")
print(json.dumps(failed))
"""


@pytest.fixture(scope="module")
def image_python(repo, fork_wheel, fork_version, tmp_path_factory):
    """A venv set up by the Dockerfile's own install line (fork wheel + PyPI), as in the image."""
    root = tmp_path_factory.mktemp("image")
    venv.create(root / "venv", with_pip=True)
    python = root / "venv" / "bin" / "python"
    stage_dir = root / "tmp-nvflare-fork"
    stage_dir.mkdir()
    shutil.copy(fork_wheel, stage_dir)
    shutil.copy(repo / "nvflare" / "lighter" / "impl" / "install_nvflare_fork.sh", stage_dir)
    stage = final_stage(repo / "docker" / "Dockerfile")
    (install,) = [line for line in stage if "install_nvflare_fork.sh" in line and line.startswith("RUN ")]
    command = install[len("RUN ") :].replace("/tmp/nvflare-fork", str(stage_dir))
    command = command.replace("/etc/nvflare-constraints.txt", str(root / "etc" / "nvflare-constraints.txt"))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(root),
        "PYTHON": str(python),
        "NVFLARE_FORK_VERSION": arg_default(stage, "NVFLARE_FORK_VERSION"),
    }
    proc = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"installed nvflare {fork_version}; pinned in" in proc.stdout
    assert not stage_dir.exists(), "the install line cleans up after itself"
    return python


def test_every_import_of_the_k8s_and_docker_launchers_resolves_in_the_image(image_python):
    site = Path(
        subprocess.run(
            [str(image_python), "-c", "import nvflare, os; print(os.path.dirname(os.path.dirname(nvflare.__file__)))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    names = launcher_imports(site)
    # the deferred imports of ServerK8sJobLauncher.launch_job and the docker SDK are among them
    assert {
        "kubernetes:config",
        "kubernetes.client.api:core_v1_api",
        "kubernetes.client.rest:ApiException",
        "docker",
        "docker.models.containers:RUN_CREATE_KWARGS",
    } <= names
    proc = subprocess.run(
        [str(image_python), "-c", PROBE, json.dumps(sorted(names))], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_the_install_line_refuses_a_wheel_whose_version_differs_from_the_label(
    repo, fork_wheel, image_python, tmp_path
):
    """NVFLARE_FORK_VERSION is checked after the install: a mismatched label fails the build."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHON": str(image_python),
        "NVFLARE_FORK_VERSION": "2.9.0+model.99",
    }
    script = repo / "nvflare" / "lighter" / "impl" / "install_nvflare_fork.sh"
    proc = subprocess.run(
        ["sh", str(script), str(fork_wheel), str(tmp_path / "c.txt")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"install_nvflare_fork.sh: {fork_wheel} installed nvflare 2.9.0+model.1, not 2.9.0+model.99"
    )
    assert not (tmp_path / "c.txt").exists()
