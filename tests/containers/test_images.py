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
"""The fork's Dockerfiles built for real: labels, the non-root user, the frameworks, and
the checks in the recipes (fork version, the pin surviving a framework install) as the
engine runs them."""

import pytest
from container_engine import FORK_IMAGE, FORK_VERSION, IMAGE_USER, PT_IMAGE, STOCK_PT_IMAGE, TF_IMAGE
from container_images import REPO, build, context, pinned

pytestmark = [pytest.mark.slow]

FORK_IMAGES = (FORK_IMAGE, PT_IMAGE, TF_IMAGE)
VERSION_PROBE = "import nvflare, os; print(nvflare.__version__, os.getuid(), os.getgid(), os.path.expanduser('~'))"


@pytest.mark.parametrize("tag", FORK_IMAGES)
def test_fork_images_are_labelled_and_run_as_the_non_root_user(engine, images, tag):
    config = engine.image(tag)["Config"]
    assert config["Labels"]["org.nvflare.fork.version"] == FORK_VERSION
    assert config["Labels"]["org.opencontainers.image.version"] == FORK_VERSION
    assert config["User"] == IMAGE_USER
    assert config["WorkingDir"] == "/var/tmp/nvflare/workspace"
    assert "PIP_CONSTRAINT=/etc/nvflare-constraints.txt" in config["Env"]
    proc = engine.run(tag, "/usr/local/bin/python", "-c", VERSION_PROBE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [FORK_VERSION, "1000", "1000", "/home/nvflare"]
    # the user owns the workspace; sticky and world-writable as upstream's job tmpfs
    proc = engine.run(tag, "stat", "-c", "%U:%G %a", "/var/tmp/nvflare/workspace")
    assert proc.stdout.strip() == "nvflare:nvflare 1777"


def test_fork_image_build_checked_the_wheel_against_its_label(engine, images):
    # written by install_nvflare_fork.sh only after the wheel's version matched the label
    proc = engine.run(FORK_IMAGE, "cat", "/etc/nvflare-constraints.txt")
    assert proc.stdout == f"nvflare=={FORK_VERSION}\n"
    log = images.log(FORK_IMAGE)
    if images.step_ran(FORK_IMAGE, "setup.py wheel"):  # else cached: it ran so in an earlier build
        assert "upstream wheel from cache: /src/wheels/nvflare-2.9.0-py3-none-any.whl" in log, "offline route"
    if images.step_ran(FORK_IMAGE, "sh /tmp/nvflare-fork/install_nvflare_fork.sh"):
        assert f"installed nvflare {FORK_VERSION}; pinned in /etc/nvflare-constraints.txt" in log


def test_launchers_import_in_the_parent_image(engine, images):
    """Everything upstream's docker and k8s job launchers import, in the image the parents run."""
    probe = (
        "import docker, kubernetes.client.api.core_v1_api, kubernetes.config;"
        "from nvflare.app_opt.job_launcher.docker_launcher import ServerDockerJobLauncher;"
        "from nvflare.app_opt.job_launcher.k8s_launcher import ServerK8sJobLauncher;"
        "import nvflare.app_common.widgets.job_model_store, nvflare.app_common.widgets.model_publisher;"
        "print(docker.__version__.split('.')[0])"
    )
    proc = engine.run(FORK_IMAGE, "/usr/local/bin/python", "-c", probe)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) >= 7


def test_torch_image_has_the_local_cpu_wheel(engine, images):
    if images.step_ran(PT_IMAGE, "pip install"):  # else cached: it ran so in an earlier build
        log = images.log(PT_IMAGE)
        assert f"Processing /tmp/wheels/torch-{pinned('torch')}+cpu-" in log, "the wheel on this disk, not a download"
    probe = "import torch, nvflare; print(torch.__version__, torch.version.cuda, nvflare.__version__)"
    proc = engine.run(PT_IMAGE, "python", "-c", probe)
    assert proc.stdout.split() == [f"{pinned('torch')}+cpu", "None", FORK_VERSION], proc.stderr
    assert "nvidia" not in engine.run(PT_IMAGE, "pip", "list").stdout.lower(), "no CUDA packages"
    assert "/tmp/wheels" not in engine.run(PT_IMAGE, "ls", "/tmp").stdout, "wheels are bind-mounted, not copied"


def test_tensorflow_image(engine, images):
    probe = (
        "import tensorflow as tf, keras, nvflare; print(tf.__version__, keras.__version__ > '3', nvflare.__version__)"
    )
    proc = engine.run(TF_IMAGE, "python", "-c", probe, timeout=300)
    assert proc.stdout.split() == [pinned("tensorflow-cpu"), "True", FORK_VERSION], proc.stderr


def test_stock_image_is_upstream(engine, images):
    probe = (
        "import nvflare, importlib.util as u; "
        "print(nvflare.__version__, u.find_spec('nvflare.app_common.widgets.model_publisher') is None)"
    )
    proc = engine.run(STOCK_PT_IMAGE, "python", "-c", probe)
    assert proc.stdout.split() == ["2.9.0", "True"], proc.stderr
    assert engine.image(STOCK_PT_IMAGE)["Config"]["User"] == IMAGE_USER


def test_the_pin_keeps_the_fork_through_framework_installs(engine, images, tmp_path):
    """A framework install that asks for nvflare: an upgrade keeps the fork, a newer nvflare fails the build."""
    job_image = REPO / "docker" / "job-image.Dockerfile"
    kept = build(
        engine, images, job_image, context(tmp_path / "u"), "localhost/pin-check:upgrade",
        BASE_IMAGE=FORK_IMAGE, FRAMEWORK="--upgrade nvflare",
    )  # fmt: skip
    assert kept.returncode == 0, kept.output[-4000:]
    proc = engine.run("localhost/pin-check:upgrade", "python", "-c", "import nvflare; print(nvflare.__version__)")
    assert proc.stdout.strip() == FORK_VERSION
    refused = build(
        engine, images, job_image, context(tmp_path / "n"), "localhost/pin-check:newer",
        BASE_IMAGE=FORK_IMAGE, FRAMEWORK="nvflare>=2.9.1",
    )  # fmt: skip
    assert refused.returncode != 0
    assert "The user requested (constraint) nvflare==2.9.0+model.1" in refused.output, refused.output[-4000:]
    engine.podman("rmi", "-f", "localhost/pin-check:upgrade", "localhost/pin-check:newer", check=False)


def test_the_job_image_check_fails_a_build_that_replaced_the_fork(engine, images, upstream_wheel, tmp_path):
    """pip --isolated ignores PIP_CONSTRAINT: the recipe's own check is what stops that image."""
    framework = f"--isolated --no-deps --force-reinstall /tmp/wheels/{upstream_wheel.name}"
    result = build(
        engine, images, REPO / "docker" / "job-image.Dockerfile", context(tmp_path, upstream_wheel),
        "localhost/pin-check:replaced", BASE_IMAGE=FORK_IMAGE, FRAMEWORK=framework,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Successfully installed nvflare-2.9.0" in result.output
    assert "not the fork: 2.9.0" in result.output, result.output[-4000:]
    assert engine.podman("image", "exists", "localhost/pin-check:replaced", check=False).returncode != 0
