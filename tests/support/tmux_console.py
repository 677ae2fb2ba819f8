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
"""The real fl_admin console of an admin kit in a tmux pane: keys in, the screen out.

TAB completion is readline's, and readline completes only on a real terminal; tmux gives
the console one (its own server, on a private socket, so nothing else is touched), and
``capture-pane`` shows what a user would see, completions and all.
"""

import shutil
import subprocess
import sys
import time
import uuid


def tmux_missing() -> bool:
    return shutil.which("tmux") is None


class TmuxConsole:
    def __init__(self, kit, env: dict, python: str = sys.executable, width: int = 250, height: int = 60):
        self.socket = f"fork-console-{uuid.uuid4().hex[:8]}"
        self.env = env
        command = f"cd {kit} && exec {python} -m nvflare.fuel.hci.tools.admin -m {kit} -s fed_admin.json"
        self._tmux("new-session", "-d", "-s", "c", "-x", str(width), "-y", str(height), command)

    def _tmux(self, *args) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], env=self.env, capture_output=True, text=True, timeout=30
        )
        if done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-t", "c")

    def lines(self) -> list:
        return [line.rstrip() for line in self.screen().splitlines() if line.strip()]

    def wait_for(self, predicate, timeout: float = 60, what: str = "") -> str:
        deadline = time.time() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.time() > deadline:
                raise TimeoutError(f"tmux console: no {what or predicate} within {timeout} s; screen:\n{screen}")
            time.sleep(0.2)

    def wait_for_prompt(self, timeout: float = 60):
        self.wait_for(lambda s: self._last_line(s) == ">", timeout, "prompt")

    @staticmethod
    def _last_line(screen: str) -> str:
        lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def current_line(self) -> str:
        return self._last_line(self.screen())

    def type(self, text: str):
        self._tmux("send-keys", "-t", "c", "-l", text)

    def keys(self, *keys: str):
        self._tmux("send-keys", "-t", "c", *keys)

    def clear_line(self):
        self.keys("C-a", "C-k")

    def clear_screen(self):
        self._tmux("clear-history", "-t", "c")
        self.keys("C-l")

    def close(self):
        try:
            self.clear_line()
            self.type("bye")
            self.keys("Enter")
            time.sleep(1)
        except Exception:
            pass
        try:
            self._tmux("kill-server")
        except Exception:
            pass
