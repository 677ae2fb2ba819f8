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
"""Upstream's k8s and docker job launchers, with a local "cluster" instead of a daemon.

Test code. ``LocalK8sServerJobLauncher`` is upstream's ServerK8sJobLauncher, unchanged
except that its Kubernetes API object is ``LocalKubelet``; ``LocalDockerServerJobLauncher``
is upstream's ServerDockerJobLauncher with ``LocalDockerClient`` as its Docker client.
So the pod manifest / container spec - command line, arguments, per-job environment,
credential Secret, volumes and mounts - is what upstream builds for a real cluster; the
local stand-ins only run it:

- each pod/container is a process in its own user + mount namespace (``unshare``), so it
  sees the filesystem the manifest describes at the same paths: for k8s an ``emptyDir``
  (a fresh folder) over the parent's workspace path with the startup Secret read-only on
  top; for docker a tmpfs over the workspace with startup/ and local/ bound read-only and
  the job's run folder bound read-write from the host (as Docker bind mounts do);
- the "image" is a folder bound over /usr/local/bin whose ``python``/``python3`` start
  that image's Python (a venv with stock nvflare or with the fork), so the launcher's
  ``/usr/local/bin/python`` picks the job's image as in a container;
- /etc/hosts maps the names Kubernetes services / Docker DNS would resolve to this host;
- the network is the host's: the job process reaches the parent over its internal
  listener (``stcp`` with upstream's k8s/docker comm config), as a pod reaches the parent's
  Service.

What a real cluster adds and this does not: image pulls, cgroups/resource limits, a pod
network with its own addresses, node scheduling.
"""

import base64
import os
import shlex
import shutil
import signal
import subprocess
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace

from nvflare.app_opt.job_launcher.docker_launcher import ServerDockerJobLauncher
from nvflare.app_opt.job_launcher.k8s_launcher import ServerK8sJobLauncher

IMAGE_BIN = "/usr/local/bin"


class _Box:
    """One pod or container: a process in its own mount namespace, and its log."""

    def __init__(self, root: Path, name: str):
        self.dir = Path(root) / name
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self.log = self.dir / "container.log"
        self.proc = None
        self._stage = 0
        self.lines = ["set -e"]

    def staged(self, src: str) -> str:
        """Bind ``src`` to a private path first, so a later mount over its parent cannot hide it."""
        self._stage += 1
        stage = self.dir / f"stage{self._stage}"
        stage.mkdir() if os.path.isdir(src) else stage.touch()
        self.lines.append(f"mount --bind {shlex.quote(src)} {shlex.quote(str(stage))}")
        return str(stage)

    def mount(self, src: str, target: str, read_only: bool = False, is_dir: bool = True):
        t = shlex.quote(target)
        self.lines.append(f"mkdir -p {t}" if is_dir else f"mkdir -p {shlex.quote(os.path.dirname(target))}; touch {t}")
        self.lines.append(f"mount --bind {shlex.quote(src)} {t}")
        if read_only:
            self.lines.append(f"mount -o remount,bind,ro {t}")

    def tmpfs(self, target: str, mode: int):
        self.lines.append(f"mount -t tmpfs -o mode={mode:o} tmpfs {shlex.quote(target)}")

    def start(self, image_dir: str, hosts: dict, command: list, env: dict, cwd: str = None):
        hosts_file = self.dir / "hosts"
        entries = "".join(f"127.0.0.1 {name}\n" for name in hosts)
        hosts_file.write_text(Path("/etc/hosts").read_text() + entries)
        self.lines.append(f"mount --bind {shlex.quote(str(hosts_file))} /etc/hosts")
        self.lines.append(f"mount --bind {shlex.quote(str(Path(image_dir) / 'bin'))} {IMAGE_BIN}")
        if cwd:
            self.lines.append(f"cd {shlex.quote(cwd)}")
        self.lines.append("exec " + " ".join(shlex.quote(str(a)) for a in command))
        script = "\n".join(self.lines) + "\n"
        (self.dir / "entry.sh").write_text(script)
        full_env = {"PATH": f"{IMAGE_BIN}:/usr/bin:/bin", "HOME": str(self.dir), "LANG": "C.UTF-8", **env}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    "unshare",
                    "--user",
                    "--map-root-user",
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    str(self.dir / "entry.sh"),
                ],
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(self.dir),
                start_new_session=True,
            )

    def exit_code(self):
        return self.proc.poll() if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(30)


# -- Kubernetes --------------------------------------------------------------------------
class LocalKubelet:
    """The part of kubernetes' CoreV1Api that upstream's k8s launcher calls, run locally."""

    def __init__(self, pods_root: str, images: dict, hosts: list):
        self.pods_root = Path(pods_root)
        self.images = images
        self.hosts = hosts
        self.secrets = {}
        self.pods = {}
        self._lock = threading.Lock()

    @staticmethod
    def _error(status: int, reason: str):
        from kubernetes.client.rest import ApiException

        return ApiException(status=status, reason=reason)

    # Secrets
    def create_namespaced_secret(self, namespace, body):
        with self._lock:
            name = body["metadata"]["name"]
            if name in self.secrets:
                raise self._error(409, "AlreadyExists")
            self.secrets[name] = body

    def replace_namespaced_secret(self, name, namespace, body):
        with self._lock:
            self.secrets[name] = body

    def patch_namespaced_secret(self, name, namespace, body):
        with self._lock:
            if name not in self.secrets:
                raise self._error(404, "NotFound")
            self.secrets[name]["metadata"].update(body.get("metadata") or {})

    def delete_namespaced_secret(self, name, namespace):
        with self._lock:
            if self.secrets.pop(name, None) is None:
                raise self._error(404, "NotFound")

    def _secret_files(self, name: str) -> dict:
        secret = self.secrets[name]
        files = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        files.update({k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()})
        return files

    # Pods
    def create_namespaced_pod(self, body, namespace):
        spec = body["spec"]
        name = body["metadata"]["name"]
        (container,) = spec["containers"]
        box = _Box(self.pods_root, name)
        volumes = {}
        for volume in spec.get("volumes") or []:
            if "emptyDir" in volume:
                path = box.dir / f"volume-{volume['name']}"
                path.mkdir()
            elif "secret" in volume:
                path = box.dir / f"volume-{volume['name']}"
                path.mkdir()
                for fname, data in self._secret_files(volume["secret"]["secretName"]).items():
                    (path / fname).write_bytes(data)
            else:
                raise RuntimeError(f"LocalKubelet: volume kind of {volume} is not simulated")
            volumes[volume["name"]] = str(path)
        for m in sorted(container.get("volumeMounts") or [], key=lambda m: len(m["mountPath"])):
            box.mount(volumes[m["name"]], m["mountPath"], read_only=bool(m.get("readOnly")))
        env = {}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"]
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = self._secret_files(ref["name"])[ref["key"]].decode()
        box.start(self.images[container["image"]], self.hosts, container["command"] + container["args"], env)
        box.manifest = body
        with self._lock:
            self.pods[name] = box
        return SimpleNamespace(metadata=SimpleNamespace(name=name, uid=str(uuid.uuid4())))

    def read_namespaced_pod(self, name, namespace):
        with self._lock:
            box = self.pods.get(name)
        if box is None:
            raise self._error(404, "NotFound")
        rc = box.exit_code()
        if rc is None:
            return SimpleNamespace(status=SimpleNamespace(phase="Running", container_statuses=[], conditions=[]))
        container_name = box.manifest["spec"]["containers"][0]["name"]
        terminated = SimpleNamespace(
            state=SimpleNamespace(terminated=SimpleNamespace(exit_code=rc)), name=container_name
        )
        return SimpleNamespace(
            status=SimpleNamespace(
                phase="Succeeded" if rc == 0 else "Failed", container_statuses=[terminated], conditions=[]
            )
        )

    def delete_namespaced_pod(self, name, namespace, grace_period_seconds=None):
        with self._lock:
            box = self.pods.pop(name, None)
        if box is None:
            raise self._error(404, "NotFound")
        box.kill()

    def list_namespaced_event(self, namespace, **kwargs):
        return SimpleNamespace(items=[])


class LocalK8sServerJobLauncher(ServerK8sJobLauncher):
    """Upstream's ServerK8sJobLauncher whose cluster is a LocalKubelet."""

    def __init__(self, pods_root: str, images: dict, hosts: list = (), **kwargs):
        super().__init__(config_file_path=None, **kwargs)
        self.core_v1 = LocalKubelet(pods_root, images, list(hosts))


# -- Docker ------------------------------------------------------------------------------
class _LocalContainer:
    def __init__(self, cid: str, box: _Box, client):
        self.id = cid
        self.box = box
        self.client = client

    @property
    def status(self):
        return "running" if self.box.exit_code() is None else "exited"

    @property
    def attrs(self):
        return {"State": {"ExitCode": self.box.exit_code()}}

    def wait(self):
        return {"StatusCode": self.box.proc.wait()}

    def stop(self, timeout=0):
        self.box.kill()

    def remove(self, force=False):
        self.box.kill()
        self.client.containers.forget(self.id)


class _LocalContainers:
    def __init__(self, client):
        self.client = client
        self.running = {}
        self._lock = threading.Lock()

    def run(self, image, command, name, network, detach, auto_remove, environment, mounts, working_dir, user, **kwargs):
        box = _Box(self.client.root, name)
        # Bind sources are host paths (the daemon's view), staged before the tmpfs hides them.
        staged = {id(m): box.staged(m["Source"]) for m in mounts if m["Type"] == "bind"}
        for m in sorted(mounts, key=lambda m: len(m["Target"])):
            if m["Type"] == "tmpfs":
                box.tmpfs(m["Target"], (m.get("TmpfsOptions") or {}).get("Mode", 0o1777))
            elif m["Type"] == "bind":
                box.mount(
                    staged[id(m)], m["Target"], read_only=bool(m.get("ReadOnly")), is_dir=os.path.isdir(m["Source"])
                )
            else:
                raise RuntimeError(f"LocalDockerClient: mount type {m['Type']} is not simulated")
        box.start(self.client.images[image], self.client.hosts, command, environment or {}, cwd=working_dir)
        cid = uuid.uuid4().hex
        container = _LocalContainer(cid, box, self.client)
        with self._lock:
            self.running[cid] = container
        return container

    def get(self, cid):
        import docker.errors

        with self._lock:
            container = self.running.get(cid)
        if container is None:
            raise docker.errors.NotFound(f"no container {cid}")
        return container

    def forget(self, cid):
        with self._lock:
            self.running.pop(cid, None)


class LocalDockerClient:
    """The part of docker.DockerClient that upstream's docker launcher calls, run locally."""

    def __init__(self, root: str, images: dict, hosts: list):
        self.root = Path(root)
        self.images = images
        self.hosts = hosts
        self.containers = _LocalContainers(self)


class LocalDockerServerJobLauncher(ServerDockerJobLauncher):
    """Upstream's ServerDockerJobLauncher whose daemon is a LocalDockerClient.

    ``workspace_mount`` is where the parent sees its workspace: /var/tmp/nvflare/workspace
    inside a real parent container, the kit folder here (upstream's class constant).
    """

    def __init__(self, containers_root: str, images: dict, workspace_mount: str, hosts: list = (), **kwargs):
        super().__init__(**kwargs)
        self.WORKSPACE_MOUNT = workspace_mount
        self._docker_client = LocalDockerClient(containers_root, images, list(hosts))
