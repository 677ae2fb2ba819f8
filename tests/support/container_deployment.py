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
"""A `nvflare deploy prepare` docker deployment on the real engine, as an operator runs it.

Test code. Provisioned by the fork (`nvflare provision`: server ``server``, sites site-1
and site-2, a project admin whose console connects to localhost), each kit prepared with
`nvflare deploy prepare` for runtime docker, owned by a non-root user (uid 1000, the
images' user), and started by the kit's own ``startup/start_docker.sh`` run as that user
with the engine's socket group: the script's ``--user $(id -u):$(id -g)`` makes every
parent container non-root, and upstream's docker job launcher starts each job container
with the parent's uid:gid. The job store is in the server's workspace (deploy prepare's
layout), on the same filesystem as the run folders the job containers write. The
server's dedicated model-signing key is installed in the prepared server kit's
``signing/`` with `nvflare fork signing-key install`, as docs/provenance.md tells operators.
"""

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from container_engine import FORK_IMAGE, IMAGE_USER
from flare_system import free_port

NVFLARE = str(Path(sys.executable).parent / "nvflare")
ADMIN = "admin@nvidia.com"
SITES = ("site-1", "site-2")
PARTICIPANTS = ("server",) + SITES
NETWORK = "nvflare-lane"
UID, GID = (int(x) for x in IMAGE_USER.split(":"))
PROJECT = "ctr"


def project_yml(port: int) -> dict:
    """upstream's sample project (`nvflare provision -g`) with this deployment's participants."""
    import nvflare.lighter

    project = yaml.safe_load((Path(nvflare.lighter.__file__).parent / "dummy_project.yml").read_text())
    project["name"] = PROJECT
    for builder in project["builders"]:  # no AWS/Azure start scripts in these kits
        if builder["path"].endswith(".WorkspaceBuilder"):
            builder["args"]["template_file"] = ["master_template.yml"]
    project["participants"] = [
        {"name": "server", "type": "server", "org": "nvidia", "fed_learn_port": port},
        *({"name": s, "type": "client", "org": "nvidia"} for s in SITES),
        # outside the containers: the port the server container publishes on this host
        {"name": ADMIN, "type": "admin", "org": "nvidia", "role": "project_admin", "connect_to": {"host": "localhost"}},
    ]
    return project


def _run(args, cwd=None, timeout=300, env=None) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


class Deployment:
    """Server parent and both sites as containers from the fork image, started by their kits."""

    def __init__(self, engine, root: Path, parent_image: str = FORK_IMAGE):
        self.engine = engine
        self.root = Path(root)
        self.parent_image = parent_image
        self.port = free_port()
        self.prod = self.root / "ws" / PROJECT / "prod_00"
        self.prepared = self.root / "prepared"
        self.home = self.root / "home"  # the deployment user's HOME (Docker CLI config)
        self.logs = self.root / "logs"
        self.scripts = {}  # participant -> Popen of its start_docker.sh
        self.log_files = {}

    # -- paths -------------------------------------------------------------------------
    def kit(self, participant: str) -> Path:
        return self.prepared / participant

    @property
    def admin_kit(self) -> Path:
        return self.prod / ADMIN

    @property
    def signing_source(self) -> Path:
        return self.prod / "server.model-signing"

    @property
    def signing_dir(self) -> Path:
        return self.kit("server") / "signing"

    @property
    def jobs_storage(self) -> Path:
        return self.kit("server") / "jobs-storage"

    def job_store_dir(self, job_id: str) -> Path:
        return self.jobs_storage / job_id

    def parent_log(self, participant: str = "server") -> str:
        return self.log_files[participant].read_text(errors="replace")

    # -- setting up ----------------------------------------------------------------------
    def prepare(self):
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "project.yml").write_text(yaml.safe_dump(project_yml(self.port), sort_keys=False))
        _run([NVFLARE, "provision", "-p", "project.yml", "-w", "ws"], cwd=self.root)
        config = self.root / "docker.yaml"
        config.write_text(
            yaml.safe_dump({"runtime": "docker", "parent": {"docker_image": self.parent_image, "network": NETWORK}})
        )
        self.prepare_output = {}
        for p in PARTICIPANTS:
            self.prepare_output[p] = _run(
                [
                    NVFLARE,
                    "deploy",
                    "prepare",
                    str(self.prod / p),
                    "--config",
                    str(config),
                    "--output",
                    str(self.kit(p)),
                ]
            )
        # The server's dedicated model-signing key (issued by `nvflare provision` beside the kit),
        # installed where the docs say: <prepared kit>/signing, which no job container mounts.
        self.signing_install = _run(
            [NVFLARE, "fork", "signing-key", "install", str(self.kit("server")), "--from", str(self.signing_source)]
        )
        self.home.mkdir()
        self.logs.mkdir()
        for path in (self.prepared, self.home):
            _run(["chown", "-R", f"{UID}:{GID}", str(path)])
        os.chmod(self.root, 0o755)
        return self

    def start(self, participant: str):
        """Run the kit's startup/start_docker.sh as the deployment user (it blocks while the container runs)."""
        log = self.logs / f"{participant}.log"
        self.log_files[participant] = log
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "DOCKER_HOST": f"unix://{self.engine.socket}",
        }
        with open(log, "ab") as out:
            self.scripts[participant] = subprocess.Popen(
                ["setpriv", f"--reuid={UID}", f"--regid={GID}", f"--groups={self.engine.socket_gid}"]
                + ["bash", "./startup/start_docker.sh"],
                cwd=self.kit(participant),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_all(self, timeout: float = 180):
        self.engine.remove_containers(*PARTICIPANTS)  # a crashed earlier run's
        self.start("server")
        self.wait_for_log("server", "Server started", timeout)
        for site in SITES:
            self.start(site)
        return self.wait_until_up(timeout)

    def wait_for_log(self, participant: str, text: str, timeout: float, since: int = 0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.parent_log(participant)[since:]:
                return
            if self.scripts[participant].poll() is not None:
                raise RuntimeError(f"{participant}'s start_docker.sh exited:\n{self.parent_log(participant)[-4000:]}")
            time.sleep(0.5)
        raise RuntimeError(f"{participant} did not log {text!r} in {timeout}s:\n{self.parent_log(participant)[-4000:]}")

    def wait_until_up(self, timeout: float = 180):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                with self.session() as sess:
                    connected = len(sess.get_system_info().client_info)
                if connected >= len(SITES):
                    return self
                last = f"{connected} site(s) connected"
            except Exception as e:  # still starting
                last = repr(e)
            time.sleep(1)
        raise RuntimeError(f"deployment not up in {timeout}s: {last}\n{self.parent_log()[-4000:]}")

    def stop(self, participant: str, timeout: float = 60):
        """`docker stop` the parent container (start_docker.sh ran it with --rm: it is removed)."""
        self.engine.podman("stop", "-t", "10", participant, check=False, timeout=timeout)
        script = self.scripts.pop(participant, None)
        if script:
            try:
                script.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(script.pid, 9)
                script.wait(10)

    def teardown(self):
        self.engine.podman("stop", "-t", "5", *PARTICIPANTS, check=False, timeout=120)
        for p in PARTICIPANTS:
            with contextlib.suppress(Exception):
                self.stop(p)
        # job containers the parents left (none if every job ended)
        leftovers = self.engine.podman("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split()
        self.engine.remove_containers(*[n for n in leftovers if re.match(r"(server|site-\d)-", n)])
        self.engine.podman("network", "rm", "-f", NETWORK, check=False)

    # -- admin side (outside the containers) ---------------------------------------------
    @contextlib.contextmanager
    def session(self, timeout: float = 30):
        from nvflare.fuel.flare_api.flare_api import new_secure_session

        sess = new_secure_session(ADMIN, str(self.admin_kit), timeout=timeout)
        try:
            yield sess
        finally:
            sess.close()

    @contextlib.contextmanager
    def full_volume_in_parent(self, path: str, participant: str = "server"):
        """A full tmpfs (one page, filled) over ``path`` inside the running parent container.

        Mounted in the container's own mount namespace (nsenter from this host, as root; in
        its pid namespace too, so mount tools find /proc/self), so only that container sees
        it, and only while the block runs. Yields a function listing what is in the full volume.
        """
        pid = str(self.engine.container(participant)["State"]["Pid"])

        def inside(*command) -> str:
            return _run(["nsenter", "-t", pid, "-m", "-p", "--", *command])

        def mounted() -> bool:
            return f" {path} " in inside("cat", "/proc/self/mountinfo")

        inside("mkdir", "-p", path)
        inside("chown", f"{UID}:{GID}", path)  # the store's own folder, as if it had made it
        inside("mount", "-t", "tmpfs", "-o", "size=4k,mode=0777", "tmpfs", path)
        try:
            assert mounted()
            subprocess.run(["nsenter", "-t", pid, "-m", "-p", "--", "dd", "if=/dev/zero", f"of={path}/.filler"]
                           + ["bs=4096", "count=1"], capture_output=True)  # fmt: skip
            yield lambda: sorted(set(inside("ls", "-A", path).split()) - {".filler"})
        finally:
            inside("umount", path)
            assert not mounted(), f"{path} still mounted in {participant}"

    def console_env(self) -> dict:
        return dict(os.environ, HOME=str(self.root / "admin-home"))


class JobWatch:
    """Watches one job while it runs: its server job container, as the engine reports it,
    and the hard link between the run folder's model file and the stored component.

    Upstream's launcher starts the container with auto_remove, so it is inspected while it
    exists; the run folder is removed after the workspace is archived, so the link is
    checked between publishing and archiving (the stored file's inode is the run
    folder's, with two links).
    """

    def __init__(self, deployment: Deployment, job_id: str, links: dict = None):
        self.d = deployment
        self.job_id = job_id
        self.links = dict(links or {})  # component -> file name in the run folder
        self.container = None  # inspect data of server-<job id>
        self.processes = None  # users of its processes (podman top)
        self.linked = {}  # component -> (stored inode, run-folder inode, stored link count)
        self.seen = set()  # names of every container of this job seen running (server and sites)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        name = f"server-{self.job_id}"
        polls = 0
        while not self._stop.is_set():
            polls += 1
            if polls % 10 == 1:
                with contextlib.suppress(Exception):
                    self.seen |= {c.name for c in self.d.engine.docker().containers.list() if self.job_id in c.name}
            if self.container is None:
                with contextlib.suppress(Exception):
                    attrs = self.d.engine.container(name)
                    if attrs and attrs["State"].get("Running"):
                        self.container = attrs
                        self.processes = self.d.engine.process_users(name)
            for component, file_name in self.links.items():
                if component in self.linked:
                    continue
                stored = self.d.job_store_dir(self.job_id) / component
                with contextlib.suppress(OSError):
                    st = stored.stat()
                    found = list((self.d.kit("server") / self.job_id).rglob(file_name))
                    if found:
                        self.linked[component] = (st.st_ino, found[0].stat().st_ino, st.st_nlink)
            time.sleep(0.05)

    def stop(self):
        self._stop.set()
        self._thread.join(10)


def submit(deployment: Deployment, job_folder: Path, links: dict = None) -> tuple:
    with deployment.session() as sess:
        job_id = sess.submit_job(str(job_folder))
    return job_id, JobWatch(deployment, job_id, links)


def wait_finished(deployment: Deployment, job_id: str, timeout: float = 600) -> tuple:
    """(status, components) the moment the job's status first reads FINISHED:*."""
    deadline = time.time() + timeout
    with deployment.session() as sess:
        while time.time() < deadline:
            status = sess.get_job_meta(job_id).get("status", "")
            if status.startswith("FINISHED"):
                return status, sess.list_job_components(job_id)
            time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s\n{deployment.parent_log()[-4000:]}")


def wait_ended(deployment: Deployment, job_id: str, timeout: float = 120) -> tuple:
    """(status, components, how it ended) of a job whose server container exits on its own.

    podman 4.3's Docker API loses the exit of a container that auto_remove removed (``wait``
    answers StatusCode 0 "container has already been removed", or never answers), so
    upstream's DockerJobHandle may report such a job a success or keep it RUNNING; then the
    admin's abort_job ends it, as an operator would. Docker Engine reports the exit code.
    """
    try:
        return (*wait_finished(deployment, job_id, timeout), "by itself")
    except AssertionError:  # the engine never reported the exit
        with deployment.session() as sess:
            sess.abort_job(job_id)
        return (*wait_finished(deployment, job_id, 180), "by abort_job")


@dataclass
class JobRun:
    job_id: str
    status: str
    components: list
    watch: object
    folder: Path


def run_jobs(deployment, jobs: dict, timeout: float = 900) -> dict:
    """Submit every job of ``{name: (folder, links)}`` at once; {name: JobRun}, each with the
    components listed the moment its status first read FINISHED:*."""
    submitted = {name: (folder, *submit(deployment, folder, links)) for name, (folder, links) in jobs.items()}
    runs = {}
    deadline = time.time() + timeout
    try:
        with deployment.session() as sess:
            while len(runs) < len(submitted) and time.time() < deadline:
                for name, (folder, job_id, watch) in submitted.items():
                    status = "" if name in runs else sess.get_job_meta(job_id).get("status", "")
                    if status.startswith("FINISHED"):
                        runs[name] = JobRun(job_id, status, sess.list_job_components(job_id), watch, folder)
                        watch.stop()
                time.sleep(0.1)
    finally:
        for _, _, watch in submitted.values():
            watch.stop()
    missing = sorted(set(submitted) - set(runs))
    assert not missing, f"jobs {missing} did not finish in {timeout}s\n{deployment.parent_log()[-4000:]}"
    return runs


def job_meta(deployment: Deployment, job_id: str) -> dict:
    return json.loads((deployment.job_store_dir(job_id) / "meta").read_text())


def archive(deployment, job_id: str) -> dict:
    with zipfile.ZipFile(deployment.job_store_dir(job_id) / "workspace") as z:
        return {n: z.read(n) for n in z.namelist() if not n.endswith("/")}


def member(files: dict, suffix: str) -> bytes:
    (found,) = [data for name, data in files.items() if name.endswith(suffix)]
    return found
