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
"""The real fl_admin console of an admin kit, driven through a pseudo-terminal.

It runs exactly what the kit's startup/fl_admin.sh runs (python -m
nvflare.fuel.hci.tools.admin -m <kit> -s fed_admin.json), with the test venv's python, so
the console sees a terminal as it does for a user and prints what a user reads.
"""

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

PROMPT = "> "
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class AdminConsole:
    def __init__(self, kit, env=None, timeout: float = 60, python: str = sys.executable):
        self.kit = str(kit)
        self.timeout = timeout
        master, slave = pty.openpty()
        # A wide terminal: readline would otherwise wrap long commands with escapes.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 1000, 0, 0))
        env = dict(env or os.environ, TERM="dumb")
        os.makedirs(os.path.join(self.kit, "transfer"), exist_ok=True)
        self.proc = subprocess.Popen(
            [python, "-m", "nvflare.fuel.hci.tools.admin", "-m", self.kit, "-s", "fed_admin.json"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=self.kit,
            env=env,
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.buffer = ""
        self.transcript = ""

    def _read(self, deadline: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], max(0.0, min(0.5, deadline - time.time())))
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536).decode(errors="replace")
        except OSError:  # the console exited
            return False
        data = _ANSI.sub("", data).replace("\r\n", "\n").replace("\r", "\n")
        self.buffer += data
        self.transcript += data
        return True

    def expect(self, pattern: str, timeout: float = None) -> str:
        """Read until ``pattern`` (a regex) appears; return everything up to and including it."""
        deadline = time.time() + (timeout or self.timeout)
        regex = re.compile(pattern)
        while True:
            m = regex.search(self.buffer)
            if m:
                out, self.buffer = self.buffer[: m.end()], self.buffer[m.end() :]
                return out
            if time.time() > deadline or (not self._read(deadline) and self.proc.poll() is not None):
                raise TimeoutError(f"console: no {pattern!r} within the timeout; transcript:\n{self.transcript}")

    def send(self, line: str):
        os.write(self.master, (line + "\n").encode())

    def login(self):
        out = self.expect(r"(User Name: |\n> $)")
        if out.endswith("User Name: "):
            raise RuntimeError(f"console asked for a user name: {out}")
        return out

    def run(self, command: str, timeout: float = None) -> str:
        """Send a command and return what the console printed before its next prompt."""
        self.send(command)
        out = self.expect(r"\n> $|\n> (?=\S)", timeout)
        lines = out.split("\n")
        if lines and lines[0].strip() == command.strip():
            lines = lines[1:]  # the terminal's echo
        return "\n".join(lines[:-1]).strip("\n")

    def close(self):
        try:
            if self.proc.poll() is None:
                self.send("bye")
                self.proc.wait(timeout=20)
        except Exception:
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self.master)

    def __enter__(self):
        self.login()
        return self

    def __exit__(self, *exc):
        self.close()
