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
"""An attacker with an ordinary account: range requests flooding its own download (issue 21).

The review's attack, as a process of its own (an attacker on another host; ``nice`` makes
its client's CPU a stand-in for that): one account logs in with its own kit, opens
``transfers`` downloads of a component of its own job with the raw
``download_job_component`` command, and keeps ``big`` threads asking for 2 MiB ranges and
``small`` threads asking for 1-byte ranges of them, each request sent as the fork's admin
client sends it (a cell request on the range channel, job_component_defs) and sent again
as soon as its answer came (after ``pause`` seconds if it was refused), until ``seconds``
passed or ``stop_file`` exists. Bounded in count (the threads) and in time.

Printed, one JSON line each: {"ready": time} once the downloads are open and the threads
start, then {"stats": ...}: per outcome (ok, or return code and error text) the count and
the latency (median, 90th percentile, max) of its answers, and the bytes received.

    python range_flood.py KIT USER JOB_ID COMPONENT --seconds 60 --stop-file F
"""

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

MIB = 1024 * 1024


def _summary(latencies: list) -> dict:
    latencies = sorted(latencies)
    return {
        "n": len(latencies),
        "median": statistics.median(latencies) if latencies else None,
        "p90": latencies[int(0.9 * (len(latencies) - 1))] if latencies else None,
        "max": latencies[-1] if latencies else None,
    }


def flood(args) -> dict:
    from nvflare.fuel.f3.cellnet.defs import MessageHeaderKey, ReturnCode
    from nvflare.fuel.f3.message import Message
    from nvflare.fuel.flare_api.flare_api import new_secure_session
    from nvflare.fuel.hci.job_component_defs import (
        LENGTH,
        OFFSET,
        RANGE_CHANNEL,
        RANGE_TOPIC,
        RANGE_TRANSFER,
        SOURCE_FQCN,
        TRANSFER_ID,
        TRANSFER_SIZE,
    )

    sess = new_secure_session(args.user, args.kit, timeout=60)
    try:
        transfers = []
        for _ in range(args.transfers):
            result = sess.api.server_execute(f"download_job_component {args.job_id} {args.component}")
            meta = result.get("meta") or {}
            if meta.get("status") != "ok":
                raise RuntimeError(f"the download did not open: {result}")
            transfers.append(meta[RANGE_TRANSFER])
        cell = sess.api.cell
        outcomes = {}  # outcome -> latencies
        received = [0]
        lock = threading.Lock()
        deadline = time.time() + args.seconds

        def stopped() -> bool:
            return time.time() > deadline or os.path.exists(args.stop_file)

        def run(i: int, length: int):
            rng = random.Random(i)
            while not stopped():
                transfer = transfers[i % len(transfers)]
                offset = rng.randrange(0, max(1, transfer[TRANSFER_SIZE] - length))
                request = Message(
                    headers={}, payload={TRANSFER_ID: transfer[TRANSFER_ID], OFFSET: offset, LENGTH: length}
                )
                t0 = time.monotonic()
                reply = cell.send_request(
                    channel=RANGE_CHANNEL, topic=RANGE_TOPIC, target=transfer[SOURCE_FQCN], request=request, timeout=30
                )
                took = time.monotonic() - t0
                rc = reply.get_header(MessageHeaderKey.RETURN_CODE, ReturnCode.OK)
                outcome = "ok" if rc == ReturnCode.OK else f"{rc}: {reply.get_header(MessageHeaderKey.ERROR) or ''}"
                with lock:
                    outcomes.setdefault(outcome, []).append(took)
                    if rc == ReturnCode.OK and isinstance(reply.payload, bytes):
                        received[0] += len(reply.payload)
                if rc != ReturnCode.OK and args.pause:
                    time.sleep(args.pause)

        threads = [threading.Thread(target=run, args=(i, 2 * MIB), daemon=True) for i in range(args.big)]
        threads += [threading.Thread(target=run, args=(args.big + i, 1), daemon=True) for i in range(args.small)]
        print(json.dumps({"ready": time.time()}), flush=True)
        started = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.seconds + 60)
        return {
            "seconds": time.time() - started,
            "threads": len(threads),
            "transfers": len(transfers),
            "bytes": received[0],
            "outcomes": {k: _summary(v) for k, v in outcomes.items()},
        }
    finally:
        sess.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kit")
    parser.add_argument("user")
    parser.add_argument("job_id")
    parser.add_argument("component")
    parser.add_argument("--transfers", type=int, default=3)
    parser.add_argument("--big", type=int, default=40, help="threads asking for 2 MiB ranges")
    parser.add_argument("--small", type=int, default=130, help="threads asking for 1-byte ranges")
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds a thread waits after a refusal")
    parser.add_argument("--stop-file", default=os.devnull + ".never")
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    print(json.dumps({"stats": flood(args)}), flush=True)
    return 0


class Flood:
    """The attacker as a child process (``with Flood(...) as f: ...; f.stats``)."""

    def __init__(self, system, user: str, job_id: str, component: str, stop_file, **options):
        import subprocess

        self.stop_file = stop_file
        args = [sys.executable, __file__, str(system.kit(user)), user, job_id, component, "--stop-file", str(stop_file)]
        for name, value in options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        self.log = Path(str(stop_file) + ".log")  # not a pipe: a chatty child could fill it and stall
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, env=system.env)
        self.ready = None
        self.stats = None

    def wait_ready(self, timeout: float = 120) -> float:
        for line in self.proc.stdout:  # the FLARE API prints "Connecting to FLARE ..." first
            if line.startswith('{"ready"'):
                self.ready = json.loads(line)["ready"]
                return self.ready
        self.proc.wait(timeout)  # no "ready": it failed
        raise RuntimeError(f"the flood did not start: {self.log.read_text()[-3000:]}")

    def stop(self, timeout: float = 120) -> dict:
        Path(self.stop_file).touch()
        out, _ = self.proc.communicate(timeout=timeout)
        for line in out.splitlines():
            if line.startswith('{"stats"'):
                self.stats = json.loads(line)["stats"]
        if self.stats is None:
            raise RuntimeError(f"the flood printed no stats: {self.log.read_text()[-3000:]}")
        return self.stats

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            try:
                self.stop()
            except Exception:
                self.proc.kill()
                self.proc.wait(30)


if __name__ == "__main__":
    sys.exit(main())
