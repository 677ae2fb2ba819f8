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
"""What the benches under bench/ share: a sampling thread, and where a run's JSON goes."""

import json
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


class Sampler:
    """Calls ``sample()`` every ``interval`` seconds in a thread while the ``with`` block runs.

    ``sample`` returns False to stop early (the process it watches is gone).
    """

    def __init__(self, interval: float):
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> bool:
        raise NotImplementedError

    def _run(self):
        while not self.stop.is_set():
            if self.sample() is False:
                return
            self.stop.wait(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def write_result(tag: str, result: dict) -> Path:
    """bench/results/<tag>_<time>.json with ``result``; prints where it went."""
    out = RESULTS / f"{tag}_{time.strftime('%Y%m%d_%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nJSON: {out}")
    return out
