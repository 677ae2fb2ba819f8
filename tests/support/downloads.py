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
"""Downloads the way users run them, for fault-injection tests: the real fl_admin console
and FLARE API sessions in their own processes, so a test can kill, stop or limit them."""

import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from admin_console import AdminConsole

DOWNLOAD_ONCE = Path(__file__).with_name("download_once.py")
_FAILED = re.compile(r"^(Error: )?download of \S+ failed.*$", re.M)
_KEPT = re.compile(r"; the (\d+) bytes received so far are kept in (\S+): run the same command again to resume$")
NOTHING_KEPT = "; no file was kept"


def part_files(dest, component: str) -> list:
    """The admin client's partial file for ``component`` in ``dest`` (``<final name>.part``,
    never a final name)."""
    return sorted(Path(dest).glob(f"{component}*.part"))


def what_was_kept(message: str, dest, component: str) -> str:
    """``message`` without its ending, after checking that ending against ``dest``.

    An interrupted download keeps ``<final name>.part`` once it holds a whole recorded
    block (a later run resumes from it), and nothing before that; where the fault lands
    depends on the transfer's speed, so either ending is right, but only with the
    destination in the matching state: empty, or exactly that partial file of the size
    the message names."""
    from nvflare.apis.utils.component_block_hashes import MIN_BLOCK

    left = sorted(os.listdir(dest))
    kept = _KEPT.search(message)
    if kept is None:
        assert message.endswith(NOTHING_KEPT), message
        assert left == [], f"{message}\nbut the destination holds {left}"
        return message[: -len(NOTHING_KEPT)]
    size, path = int(kept.group(1)), Path(kept.group(2))
    assert path.parent == Path(dest) and left == [path.name], (message, left)
    assert path.name.startswith(component) and path.name.endswith(".part"), message
    assert path.stat().st_size == size >= MIN_BLOCK, (message, path.stat().st_size)
    return message[: kept.start()]


def wait_for_part(dest, component: str, min_bytes: int, timeout: float = 120) -> Path:
    """Wait until a download into ``dest`` has written ``min_bytes``: the transfer is under way."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for part in part_files(dest, component):
            try:
                if part.stat().st_size >= min_bytes:
                    return part
            except FileNotFoundError:
                pass
        time.sleep(0.01)
    raise TimeoutError(f"no download of {component} under way in {dest} after {timeout}s")


def wait_until(predicate, timeout: float, step: float = 0.2) -> float:
    """Seconds until ``predicate()`` held; TimeoutError if it never did."""
    started = time.time()
    while not predicate():
        if time.time() - started > timeout:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(step)
    return time.time() - started


class ConsoleDownload:
    """``download_job_component`` typed into a real fl_admin console, left running."""

    def __init__(self, system, job_id: str, component: str, dest, user: str = None):
        self.console = AdminConsole(system.kit(user) if user else system.kit(), env=system.env)
        self.console.login()
        self.console.send(f"download_job_component {job_id} {component} {dest}")

    def finish(self, timeout: float) -> tuple:
        """(what the console printed up to its next prompt, seconds it took)."""
        started = time.time()
        out = self.console.expect(r"\n> $", timeout)
        return out, time.time() - started

    @staticmethod
    def failure_line(out: str) -> str:
        m = _FAILED.search(out)
        assert m, f"no failure message in the console output:\n{out}"
        return m.group(0)

    def close(self):
        self.console.close()


UNDER_WAY = 8 * 1024 * 1024  # bytes received before a test injects its fault


@contextlib.contextmanager
def download_under_way(system, job_id: str, component: str, dest, min_bytes: int = UNDER_WAY):
    """A console download that has received ``min_bytes``; yields it and the server's
    transaction folder(s) created for it."""
    before = system.transfer_transactions()
    download = ConsoleDownload(system, job_id, component, dest)
    try:
        wait_for_part(dest, component, min_bytes)
        yield download, system.transfer_transactions() - before
    finally:
        download.close()


def console_download(system, job_id: str, component: str, dest, timeout: float = 300) -> str:
    """Run one download_job_component in a fresh console; what it printed."""
    download = ConsoleDownload(system, job_id, component, dest)
    try:
        return download.finish(timeout)[0]
    finally:
        download.close()


def _limit_file_size(limit: int):
    def apply():
        # A write past the limit then fails with EFBIG, as on a full or quota-limited disk.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def start_api_download(system, job_id: str, component: str, dest, user: str = None, file_size_limit: int = None):
    """A FLARE API download in its own process; ``api_result`` collects it."""
    kit = system.kit(user) if user else system.kit()
    return subprocess.Popen(
        [sys.executable, str(DOWNLOAD_ONCE), str(kit), kit.name, job_id, component, str(dest)],
        env=system.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_limit_file_size(file_size_limit) if file_size_limit else None,
    )


def api_result(proc: subprocess.Popen, timeout: float = 300) -> dict:
    """{"path": ...} or {"error": "<ExceptionType>: <message>"} from a start_api_download process."""
    out, _ = proc.communicate(timeout=timeout)
    results = [line[len("RESULT ") :] for line in out.splitlines() if line.startswith("RESULT ")]
    assert results, f"download process ended without a result ({proc.returncode}):\n{out}"
    return json.loads(results[-1])
