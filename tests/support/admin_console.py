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
"""The real ``fl_admin`` console of a startup kit, driven through a pseudo-terminal.

What a person types and reads is what the tests and the quickstart type and read: the
kit's own ``startup/fl_admin.sh``, its prompt, its printed lines.
"""

import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

PROMPT = "\r\n> "
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class ConsoleError(Exception):
    pass


class AdminConsole:
    def __init__(self, kit_dir, env=None, login_timeout: float = 60):
        self.kit_dir = Path(kit_dir)
        env = dict(env or os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.pop("PYTHONPATH", None)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child: become the console
            os.chdir(self.kit_dir)
            os.execvpe("bash", ["bash", str(self.kit_dir / "startup" / "fl_admin.sh")], env)
        self.transcript = ""
        banner = self._read_until(PROMPT, login_timeout)
        if "Type ? to list commands" not in banner:
            self.close()
            raise ConsoleError(f"console did not log in:\n{banner}")

    def _read_until(self, marker: str, timeout: float) -> str:
        buf = ""
        deadline = time.time() + timeout
        while time.time() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 65536).decode(errors="replace")
            except OSError:  # the console exited
                break
            if not chunk:
                break
            buf += chunk
            if buf.endswith(marker) or (marker != PROMPT and marker in buf):
                break
        else:
            raise ConsoleError(f"no {marker!r} within {timeout}s; console printed:\n{buf}")
        self.transcript += buf
        return buf

    def run(self, command: str, timeout: float = 300) -> str:
        """Type one command; return what the console printed for it (echo and prompt removed)."""
        os.write(self.fd, command.encode() + b"\n")
        out = _ANSI.sub("", self._read_until(PROMPT, timeout))
        out = out[: -len(PROMPT)] if out.endswith(PROMPT) else out
        lines = out.replace("\r\n", "\n").split("\n")
        if lines and lines[0].strip() == command.strip():
            lines = lines[1:]
        return "\n".join(lines)

    def close(self):
        if self.pid is None:
            return
        try:
            os.write(self.fd, b"bye\n")
        except OSError:
            pass
        deadline = time.time() + 10
        while time.time() < deadline:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.2)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)
        self.pid = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
