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
"""A real local FLARE system (POC mode, provisioned kits) for tests.

Everything lives under one folder: HOME and NVFLARE_POC_WORKSPACE point there, so nothing
leaks into the user's home, and the server port is picked free so two systems (or two
developers' test runs) never collide. Teardown stops the system and kills any process
still running from the workspace, so a failed test cannot leave servers behind.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

NVFLARE = str(Path(sys.executable).parent / "nvflare")
PROJECT_ADMIN = "admin@nvidia.com"


@contextlib.contextmanager
def tuned_system(tmp_path_factory, name: str, settings: dict = None, env: dict = None, admin_config: dict = None):
    """A started one-client POC system with these server settings, environment and admin
    config, stopped at the end: what a module-scoped fixture of a system test wants."""
    system = FlareSystem(tmp_path_factory.mktemp(name), n_clients=1)
    try:
        system.prepare()
        if settings:
            system.set_server_settings(**settings)
        system.env.update(env or {})
        if admin_config:
            system.set_admin_config(**admin_config)
        system.start()
        yield system
    finally:
        system.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FlareSystem:
    """One POC system: server + clients, admin kits for every provisioned user.

    ``project_edit`` gets the parsed project.yml (a dict) and may change it (extra users,
    orgs, clients) before the kits are provisioned.
    """

    def __init__(self, root, n_clients: int = 2, project_edit=None):
        self.root = Path(root)
        self.home = self.root / "home"
        self.workspace = self.root / "poc"
        self.n_clients = n_clients
        self.project_edit = project_edit
        self.port = free_port()
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env.update({"HOME": str(self.home), "NVFLARE_POC_WORKSPACE": str(self.workspace)})
        self.env.pop("PYTHONPATH", None)
        self.started = False
        self.nvflare = NVFLARE  # the nvflare command run_nvflare uses (upgrade tests: upstream's)

    # -- paths -------------------------------------------------------------------------
    @property
    def prod(self) -> Path:
        return self.workspace / "example_project" / "prod_00"

    @property
    def server_dir(self) -> Path:
        return self.prod / "server"

    @property
    def console_log(self) -> Path:
        return self.server_dir / "poc_console.log"

    def kit(self, user: str = PROJECT_ADMIN) -> Path:
        return self.prod / user

    def transfer_dir(self, user: str = PROJECT_ADMIN) -> Path:
        return self.kit(user) / "transfer"

    @property
    def server_resources_file(self) -> Path:
        return self.server_dir / "local" / "resources.json"

    def set_server_settings(self, **settings):
        """Add or change top-level keys of the server's local/resources.json (read at start)."""
        resources = json.loads(self.server_resources_file.read_text())
        resources.update(settings)
        self.server_resources_file.write_text(json.dumps(resources, indent=2))

    @property
    def jobs_storage(self) -> Path:
        resources = json.loads(self.server_resources_file.read_text())
        for comp in resources["components"]:
            if comp.get("id") == "job_manager":
                return Path(comp["args"]["uri_root"])
        raise RuntimeError("server resources.json has no job_manager component")

    def job_store_dir(self, job_id: str) -> Path:
        return self.jobs_storage / job_id

    @property
    def audit_log(self) -> Path:
        return self.server_dir / "audit.log"

    @property
    def server_transfer_dir(self) -> Path:
        """The server's admin_storage: one <tx_id>/<job_id>/ folder per running admin download."""
        return self.server_dir / "transfer"

    def transfer_transactions(self) -> set:
        folder = self.server_transfer_dir
        return set(os.listdir(folder)) if folder.is_dir() else set()

    # -- lifecycle ---------------------------------------------------------------------
    def run_nvflare(self, *args, timeout=120, check=True, input_text=None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(self.nvflare), *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"nvflare {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def prepare(self):
        self.run_nvflare("poc", "prepare", "-n", str(self.n_clients), "--force")
        project_file = self.workspace / "project.yml"
        project = yaml.safe_load(project_file.read_text())
        for p in project["participants"]:
            if p.get("type") == "server":
                p["fed_learn_port"] = self.port
        if self.project_edit:
            self.project_edit(project)
        edited = self.root / "project.yml"
        edited.write_text(yaml.safe_dump(project, sort_keys=False))
        self.run_nvflare("poc", "prepare", "-i", str(edited), "--force")
        self._own_storage()
        return self

    def _own_storage(self):
        """Job and snapshot storage inside this system's folder, not POC's shared /tmp/nvflare.

        Two systems up at once (a test's own beside the shared one, or two developers' runs)
        would otherwise read one job store: one server runs the other's jobs and fails them.
        """
        resources = json.loads(self.server_resources_file.read_text())
        for comp in resources.get("components", []):
            if comp.get("id") == "job_manager":
                comp.setdefault("args", {})["uri_root"] = str(self.root / "jobs-storage")
        try:
            resources["snapshot_persistor"]["args"]["storage"]["args"]["root_dir"] = str(self.root / "snapshot-storage")
        except (KeyError, TypeError):
            pass
        self.server_resources_file.write_text(json.dumps(resources, indent=2))

    def start(self, timeout: float = 120):
        if os.environ.get("NVFLARE_FORK_TEST_IS_SYSTEM") == "0":  # set per test by tests/conftest.py
            raise RuntimeError("a test that starts a FLARE system must be marked @pytest.mark.system")
        self.run_nvflare("poc", "start", timeout=timeout)
        self.started = True
        return self.wait_until_up(timeout)

    def wait_until_up(self, timeout: float = 120):
        """Wait until the admin server answers and every client is connected."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                with self.session() as sess:
                    info = sess.get_system_info()
                    if len(info.client_info) >= self.n_clients:
                        return self
                    last = f"{len(info.client_info)} client(s) connected"
            except Exception as e:  # the server is still starting
                last = repr(e)
            time.sleep(1)
        raise RuntimeError(f"FLARE system did not come up in {timeout}s: {last}\n{self.tail_console()}")

    def stop(self, timeout: float = 60):
        if self.started:
            try:
                self.run_nvflare("poc", "stop", timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                pass
        self.started = False
        self.kill_leftovers(grace=30)

    def server_parent(self) -> psutil.Process:
        """The server parent process (SP), not a job's server process."""
        found = [
            p
            for p in self.workspace_processes()
            if "server_train" in " ".join(p.cmdline()) and str(self.server_dir) in p.cmdline()
        ]
        if len(found) != 1:
            raise RuntimeError(f"expected one server parent process, found {found}")
        return found[0]

    def kill_server(self, timeout: float = 30) -> int:
        """SIGKILL the server parent (a crash: nothing gets to clean up); return its pid once it is gone.

        The kit's startup/sub_start.sh watchdog starts a new server parent within ~5 s.
        """
        proc = self.server_parent()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout)
        return proc.pid

    def wait_for_restart(self, killed_pid: int, timeout: float = 120):
        """Wait until the watchdog has replaced the killed server and its clients are back."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with contextlib.suppress(RuntimeError, psutil.NoSuchProcess):
                if self.server_parent().pid != killed_pid:
                    return self.wait_until_up(max(1.0, deadline - time.time()))
            time.sleep(0.5)
        raise RuntimeError(f"the server was not restarted within {timeout}s\n{self.tail_console()}")

    def set_admin_config(self, **settings):
        """Change the "admin" section of every admin kit's startup/fed_admin.json (read at login)."""
        for kit in self.prod.iterdir():
            path = kit / "startup" / "fed_admin.json"
            if path.is_file():
                config = json.loads(path.read_text())
                config["admin"].update(settings)
                path.write_text(json.dumps(config, indent=2))

    def workspace_processes(self):
        marker = str(self.workspace)
        found = []
        for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
            try:
                cmd = " ".join(p.info["cmdline"] or [])
                if marker in cmd or (p.info["cwd"] or "").startswith(marker):
                    if p.pid != os.getpid():
                        found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def restart_server_expecting(self, expected: str, env: dict = None, timeout: float = 90) -> str:
        """Start the stopped server with ``env`` added and wait until its log says ``expected``.

        A setting checked at startup stops the server with a ConfigError; this waits for that
        message, checks that no admin server answers, ends what the kit's watchdog keeps
        starting again, takes ``env`` back out and returns the server log.
        """
        env = env or {}
        self.env.update(env)
        self.run_nvflare("poc", "start", "-p", "server", "--no-wait", timeout=120)
        self.started = True
        log = self.server_dir / "log.txt"
        deadline = time.time() + timeout
        while not (log.exists() and expected in log.read_text(errors="replace")):
            assert time.time() < deadline, f"no startup error in {log}:\n{self.tail_console()}"
            time.sleep(0.5)
        try:
            with self.session(timeout=5) as sess:
                sess.get_system_info()
        except Exception:
            pass  # no admin server: nobody to log in to
        else:
            raise AssertionError("the admin server answered although the server's settings are invalid")
        self.started = False
        self.kill_leftovers(grace=0)
        for key in env:
            self.env.pop(key)
        return log.read_text(errors="replace")

    def kill_leftovers(self, grace: float = 30):
        deadline = time.time() + grace
        while time.time() < deadline and self.workspace_processes():
            time.sleep(0.5)
        for p in self.workspace_processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)

    def tail_console(self, n: int = 40) -> str:
        if not self.console_log.exists():
            return "(no server console log)"
        return "\n".join(self.console_log.read_text(errors="replace").splitlines()[-n:])

    # -- admin access ------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self, user: str = PROJECT_ADMIN, timeout: float = 30):
        from nvflare.fuel.flare_api.flare_api import new_secure_session

        sess = new_secure_session(user, str(self.kit(user)), timeout=timeout)
        try:
            yield sess
        finally:
            sess.close()

    def submit_and_wait(self, job_folder, timeout: float = 300, user: str = PROJECT_ADMIN) -> tuple:
        """Submit a job folder, wait until it is finished; return (job_id, meta)."""
        with self.session(user) as sess:
            job_id = sess.submit_job(str(job_folder))
            sess.wait_for_job(job_id, timeout=timeout, poll_interval=0.5)
            meta = sess.get_job_meta(job_id)
        return job_id, meta
