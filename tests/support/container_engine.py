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
"""The real container engine of tools/containers.sh, as the tests drive it.

Test code. The lane sets the engine up (rootful podman with runc, its own storage, the
Docker Engine API on a unix socket) and exports where: ``NVFLARE_FORK_ENGINE_STATE``,
``NVFLARE_FORK_ENGINE_SOCKET``, ``NVFLARE_FORK_ENGINE_SOCKET_GID``,
``NVFLARE_FORK_ENGINE_BASE``. Every podman call gets the lane's containers.conf and
storage.conf; the Docker SDK and CLI talk to the socket, as upstream's docker launcher
and the kits' start_docker.sh do.
"""

import json
import os
import subprocess
from pathlib import Path

ENGINE_ENV = "NVFLARE_FORK_ENGINE_SOCKET"

FORK_VERSION = "2.9.0+model.1"
FORK_IMAGE = "localhost/nvflare-fork:2.9.0-model.1"
PT_IMAGE = "localhost/nvflare-fork-pt:2.9.0-model.1"
TF_IMAGE = "localhost/nvflare-fork-tf:2.9.0-model.1"
STOCK_PT_IMAGE = "localhost/nvflare-stock-pt:2.9.0"
IMAGE_USER = "1000:1000"  # docker/Dockerfile's NVFLARE_UID:NVFLARE_GID


class Engine:
    def __init__(self):
        self.state = Path(os.environ["NVFLARE_FORK_ENGINE_STATE"])
        self.socket = os.environ[ENGINE_ENV]
        self.socket_gid = int(os.environ["NVFLARE_FORK_ENGINE_SOCKET_GID"])
        self.base_image = os.environ["NVFLARE_FORK_ENGINE_BASE"]
        self.env = dict(
            os.environ,
            CONTAINERS_CONF=str(self.state / "containers.conf"),
            CONTAINERS_STORAGE_CONF=str(self.state / "storage.conf"),
            DOCKER_HOST=f"unix://{self.socket}",
        )
        self._client = None

    def podman(self, *args, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def build(self, dockerfile: Path, context: Path, tag: str, timeout: float = 1800, **build_args):
        """``podman build``; the CompletedProcess (stdout+stderr in .stdout), not checked."""
        args = ["build", "-f", str(dockerfile), "-t", tag]
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        proc = subprocess.run(
            ["podman", *args, str(context)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        return proc

    def image(self, tag: str) -> dict:
        return json.loads(self.podman("image", "inspect", tag).stdout)[0]

    def run(self, image: str, *command, user: str = None, timeout: float = 120) -> subprocess.CompletedProcess:
        args = ["run", "--rm", "--network", "none"] + (["--user", user] if user else []) + [image, *command]
        return self.podman(*args, timeout=timeout, check=False)

    def docker(self):
        """A Docker SDK client on the engine's Docker API, as upstream's launcher makes one."""
        if self._client is None:
            import docker

            self._client = docker.DockerClient(base_url=f"unix://{self.socket}")
        return self._client

    def container(self, name: str):
        """The container's inspect data (Docker API), or None."""
        import docker.errors

        try:
            return self.docker().containers.get(name).attrs
        except docker.errors.NotFound:
            return None

    def process_users(self, name: str) -> set:
        """The users (as the container's /etc/passwd names them) of every process in the container."""
        out = self.podman("top", name, "user").stdout.split()
        return set(out[1:])  # after the USER header

    def remove_containers(self, *names):
        for name in names:
            self.podman("rm", "-f", "-t", "0", name, check=False)
