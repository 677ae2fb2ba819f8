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
"""Peak memory of real processes while a block of test code runs."""

import threading
import time

import psutil


class PeakRss:
    """Samples the RSS of the named processes every 20 ms inside a ``with`` block.

    ``growth(name)`` is the peak seen minus the RSS at entry: what the block cost that
    process at its worst.
    """

    def __init__(self, **procs: psutil.Process):
        self.procs = procs
        self.before = {}
        self.peak = {}
        self._stop = threading.Event()
        self._threads = []

    def _sample(self, name: str, proc: psutil.Process):
        while not self._stop.is_set():
            try:
                self.peak[name] = max(self.peak[name], proc.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.02)

    def __enter__(self):
        for name, proc in self.procs.items():
            self.before[name] = self.peak[name] = proc.memory_info().rss
            thread = threading.Thread(target=self._sample, args=(name, proc), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def growth(self, name: str) -> int:
        return self.peak[name] - self.before[name]
