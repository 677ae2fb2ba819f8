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
"""How the server answers an admin while something else loads it: command latency and heartbeats.

A thread with its own FLARE API session sends a command every ``interval`` and records its
latency; ``check_status server`` (get_system_info) also lists the connected sites (a
dropped site disappears) with each site's last heartbeat as the server recorded it, so
the largest gap between two recorded heartbeats shows whether the sites' heartbeats got
through. ``list_jobs`` is what an admin types most; both are answered by the server parent
alone (used by tests/download/test_download_flood.py and bench/interference_bench.py).
"""

import statistics
import threading
import time

from flare_system import PROJECT_ADMIN


class BackgroundProbe:
    """A thread that runs ``_run`` while the ``with`` block does (it stops on ``stop_event``)."""

    def __init__(self):
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    def _run(self):
        raise NotImplementedError

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(60)


class ServerProbe(BackgroundProbe):
    """``commands``: which to send in turn, of "check_status" and "list_jobs"."""

    def __init__(self, system, interval: float = 0.5, commands=("check_status",), user: str = PROJECT_ADMIN):
        super().__init__()
        self.system = system
        self.interval = interval
        self.commands = tuple(commands)
        self.user = user
        self.samples = []

    def _send(self, sess, command: str) -> dict:
        if command == "check_status":
            info = sess.get_system_info()
            return {"clients": {c.name: c.last_connect_time for c in info.client_info}}
        if command == "list_jobs":
            sess.list_jobs()
            return {}
        raise ValueError(f"unknown probe command {command}")

    def _run(self):
        with self.system.session(self.user) as sess:
            turn = 0
            while not self.stop_event.is_set():
                command = self.commands[turn % len(self.commands)]
                turn += 1
                t0 = time.time()
                try:
                    sample = {"t": t0, "command": command, **self._send(sess, command)}
                except Exception as e:
                    sample = {"t": t0, "command": command, "error": f"{type(e).__name__}: {e}"}
                sample["latency"] = time.time() - t0
                self.samples.append(sample)
                self.stop_event.wait(max(0.0, self.interval - sample["latency"]))

    def window(self, start: float, end: float) -> list:
        return [s for s in self.samples if start <= s["t"] <= end]

    def summary(self, start: float, end: float, n_clients: int) -> dict:
        """Latency per command (median, max), errors, sites seen, largest heartbeat gap in start..end."""
        samples = self.window(start, end)
        out = {}
        for command in self.commands:
            lat = [s["latency"] for s in samples if s["command"] == command and "error" not in s]
            out[command] = {
                "n": len(lat),
                "median": statistics.median(lat) if lat else None,
                "max": max(lat) if lat else None,
            }
        seen = [len(s["clients"]) for s in samples if "clients" in s]
        gaps = heartbeat_gaps(self.samples, start, end)
        out.update(
            errors=[s["error"] for s in samples if "error" in s],
            clients_seen_min=min(seen) if seen else 0,
            all_clients_seen=bool(seen) and min(seen) >= n_clients,
            heartbeat_gap_max=max(gaps) if gaps else None,
            heartbeats=len(gaps),
        )
        return out


def heartbeat_gaps(samples: list, start: float, end: float) -> list:
    """Gaps between successive heartbeats the server recorded (per site) within start..end."""
    beats = {}
    for s in samples:
        for name, t in (s.get("clients") or {}).items():
            if t is not None and start <= t <= end:
                beats.setdefault(name, set()).add(t)
    gaps = []
    for times in beats.values():
        times = sorted(times)
        gaps += [b - a for a, b in zip(times, times[1:])]
    return gaps
