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
"""The fork's images, built on the real engine from the repo's own recipes.

Test code. docker/Dockerfile is built from the repo root (the documented command, with
the repo's .dockerignore and the offline route: the pinned upstream wheel in
docker/wheels/), on the lane's base image; docker/job-image.Dockerfile for torch CPU (the
wheel on this machine's disk, by --find-links) and TensorFlow CPU (from the index), the
versions tests/requirements.txt pins; and a stock job image (upstream nvflare 2.9.0, no
overlay) over the torch image's packages.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from container_engine import FORK_IMAGE, PT_IMAGE, STOCK_PT_IMAGE, TF_IMAGE

REPO = Path(__file__).resolve().parents[2]
STOCK_DOCKERFILE = """\
# upstream nvflare 2.9.0 (the pinned wheel, no overlay) over the fork job image's packages:
# a job image without the fork
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
USER root
RUN --mount=type=bind,source=wheels,target=/tmp/wheels \\
    pip install --isolated --no-cache-dir --no-deps --force-reinstall /tmp/wheels/nvflare-2.9.0-py3-none-any.whl
LABEL org.nvflare.fork.version="" org.opencontainers.image.version="2.9.0"
ENV PIP_CONSTRAINT=
USER ${NVFLARE_USER}
"""


def pinned(name: str) -> str:
    """The version tests/requirements.txt pins for ``name`` (the same framework as the host's tests)."""
    (version,) = re.findall(rf"^{re.escape(name)}==(\S+)", (REPO / "tests" / "requirements.txt").read_text(), re.M)
    return version


@dataclass
class Build:
    tag: str
    returncode: int
    output: str
    seconds: float


@dataclass
class Images:
    builds: dict = field(default_factory=dict)  # tag -> Build

    def log(self, tag: str) -> str:
        return self.builds[tag].output

    def step_ran(self, tag: str, marker: str) -> bool:
        """False if the build step whose instruction contains ``marker`` came from the layer
        cache (it ran, with the same inputs, in an earlier build on this engine)."""
        lines = self.log(tag).splitlines()
        (i,) = [n for n, line in enumerate(lines) if "STEP " in line and marker in line]
        return not (i + 1 < len(lines) and lines[i + 1].startswith("--> Using cache"))


def context(root: Path, *wheels: Path) -> Path:
    """A job-image build context: wheels/ with the given wheels (pip's --find-links)."""
    (root / "wheels").mkdir(parents=True)
    for wheel in wheels:
        try:
            os.link(wheel, root / "wheels" / wheel.name)
        except OSError:  # another filesystem
            shutil.copyfile(wheel, root / "wheels" / wheel.name)
    return root


def build(engine, images: Images, dockerfile: Path, context: Path, tag: str, **args) -> Build:
    t0 = time.monotonic()
    proc = engine.build(dockerfile, context, tag, **args)
    result = Build(tag, proc.returncode, proc.stdout, time.monotonic() - t0)
    images.builds[tag] = result
    print(f"built {tag} in {result.seconds:.0f} s (exit {result.returncode})")
    return result


def local_torch_wheel(dest: Path) -> Path:
    """The CPU torch wheel on this machine's disk, as pip resolves it (never a download of another torch)."""
    version = pinned("torch")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest), f"torch=={version}"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dest.glob(f"torch-{version}*.whl")
    return wheel


def build_all(engine, upstream_wheel: Path, tmp: Path) -> Images:
    """docker/Dockerfile (from the repo root, as documented) and docker/job-image.Dockerfile
    for torch CPU and TensorFlow CPU, then a stock job image; built once per run (the
    engine's layer cache keeps unchanged steps between runs)."""
    images = Images()
    offline = REPO / "docker" / "wheels" / upstream_wheel.name
    added = not offline.exists()
    if added:  # the documented offline route: the pinned upstream wheel in docker/wheels/
        shutil.copyfile(upstream_wheel, offline)
    try:
        fork = build(engine, images, REPO / "docker" / "Dockerfile", REPO, FORK_IMAGE, BASE_IMAGE=engine.base_image)
    finally:
        if added:
            offline.unlink()
    assert fork.returncode == 0, fork.output[-6000:]
    torch_wheel = local_torch_wheel(tmp / "torch")
    job_image = REPO / "docker" / "job-image.Dockerfile"
    pt = build(
        engine,
        images,
        job_image,
        context(tmp / "pt", torch_wheel),
        PT_IMAGE,
        BASE_IMAGE=FORK_IMAGE,
        FRAMEWORK=f"torch=={pinned('torch')}",
    )
    assert pt.returncode == 0, pt.output[-6000:]
    tf = build(
        engine,
        images,
        job_image,
        context(tmp / "tf"),
        TF_IMAGE,
        BASE_IMAGE=FORK_IMAGE,
        FRAMEWORK=f"tensorflow-cpu=={pinned('tensorflow-cpu')}",
    )
    assert tf.returncode == 0, tf.output[-6000:]
    stock_context = context(tmp / "stock", upstream_wheel)
    (stock_context / "Dockerfile").write_text(STOCK_DOCKERFILE)
    stock = build(engine, images, stock_context / "Dockerfile", stock_context, STOCK_PT_IMAGE, BASE_IMAGE=PT_IMAGE)
    assert stock.returncode == 0, stock.output[-6000:]
    return images
