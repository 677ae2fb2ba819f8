#!/usr/bin/env python3
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
"""Benchmark: publishing a 500 MB model at job end, same-host path vs streaming path vs `cp`.

    .venv-test/bin/python bench/publish_bench.py [--size-mb 500] [--runs 3] [--train-seconds 5]
    .venv-test/bin/python bench/publish_bench.py --size-mb 8000 --runs 1 --paths local --drop-from-workspace

Starts two real POC systems in a temp folder (the default, and one with
model_publish_transfer=stream). On each runs a job whose server writes a model file of the
given size, lists it in its persistor's inventory and fires AFTER_LEARNABLE_PERSIST, as a
real workflow does after the persistor saved the model, then goes on "training" for a few
seconds (so the background pre-hash finishes, as it does during real rounds) before the
job ends. The job-end cost is read from the job process's log: the wait for the pre-hasher
("Pre-hashing of job ... was done (N.NNs waited at job end)") plus the publish time
("Published ... (local|stream, N.NNs)": request to stored). The pre-hash itself ("Pre-hashed
... in N.NNs") is reported on its own row: it runs while the job trains, off the job-end
path. On the default system the same job also runs with its model rewritten in place after
the persist event (size and mtime kept), so the pre-hash cannot be used and the store
hashes the file at job end (the cost without pre-hashing). `cp` copies the same-size file
on the same disk. Prints a table; writes JSON to bench/results/. Target: same-host path
<= 2x cp.

Memory: the peak RSS of the server parent (the store) and of the job's server process
(which writes and pre-hashes the model) is sampled during every job and printed per row,
so a multi-GB model (``--size-mb 8000``) shows whether either holds the file in memory.
``--paths`` picks the rows (``local``, ``changed``, ``stream``); ``--drop-from-workspace``
sets model_publish_drop_from_workspace so the job's workspace archive does not carry a
second copy of the model. Each job's store folder is removed once its times are read, so
the disk holds at most one model (plus the job's own file) at a time.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))

from bench_results import Sampler, write_result  # noqa: E402
from flare_system import FlareSystem  # noqa: E402
from model_jobs import file_model_job  # noqa: E402

MODEL = "FL_global_model.pt"


class ServerRss(Sampler):
    """Peak RSS of the server parent and of any job server process while a job runs."""

    def __init__(self, system: FlareSystem):
        super().__init__(0.05)
        self.system = system
        self.parent = system.server_parent()
        self.parent_base = self.parent_peak = self.parent.memory_info().rss
        self.job_peak = 0

    def sample(self):
        self.parent_peak = max(self.parent_peak, self.parent.memory_info().rss)
        for p in self.system.workspace_processes():
            try:
                cmd = p.cmdline()
                if p.pid != self.parent.pid and str(self.system.server_dir) in " ".join(cmd):
                    self.job_peak = max(self.job_peak, p.memory_info().rss)
            except psutil.Error:
                pass


def job_end_times(system: FlareSystem, job: Path, runs: int, hashed_by: str) -> list:
    """[{mode, publish, waited, job_end, prehash, RSS}] per run; checks who hashed the model."""
    found = []
    for _ in range(runs):
        with ServerRss(system) as rss:
            job_id, meta = system.submit_and_wait(job, timeout=1800)
        if meta.get("status") != "FINISHED:COMPLETED":
            raise RuntimeError(f"bench job {job_id} ended {meta.get('status')}\n{system.tail_console()}")
        log = system.console_log.read_text(errors="replace")
        published = re.findall(rf"Published global model '{MODEL}' of job {job_id} as \S+ \((\w+), ([\d.]+)s\)", log)
        waited = re.findall(
            rf"Pre-hashing of job {job_id}'s model files (?:was done \(|stopped unfinished after )([\d.]+)s", log
        )
        prehashed = re.findall(
            rf"Pre-hashed \S*/{job_id}/\S*/{re.escape(MODEL)} \(\d+ bytes, sha256 \w+\) in ([\d.]+)s", log
        )
        stored = re.findall(
            rf"Stored global model '{MODEL}' of job {job_id} as \S+ \(\d+ bytes, sha256 \w+ ([a-z ]+), \w+\)", log
        )
        if not (published and waited and stored):
            raise RuntimeError(f"no publish lines for job {job_id}\n{system.tail_console()}")
        if stored[-1] != hashed_by:
            raise RuntimeError(f"job {job_id}: sha256 {stored[-1]}, expected {hashed_by}\n{system.tail_console()}")
        mode, publish = published[-1][0], float(published[-1][1])
        run = {"mode": mode, "publish": publish, "waited": float(waited[-1]), "job_end": publish + float(waited[-1])}
        run["prehash"] = float(prehashed[-1]) if prehashed else None
        if hashed_by == "from the job process" and run["prehash"] is None:
            raise RuntimeError(f"job {job_id}: no pre-hash line\n{system.tail_console()}")
        run["server_rss_growth_mib"] = (rss.parent_peak - rss.parent_base) / 2**20
        run["job_rss_peak_mib"] = rss.job_peak / 2**20
        shutil.rmtree(system.job_store_dir(job_id), ignore_errors=True)  # free the disk (multi-GB models)
        found.append(run)
    return found


def cp_times(folder: Path, size_mb: int, runs: int) -> list:
    src, dst = folder / "cp_src.bin", folder / "cp_dst.bin"
    block = os.urandom(1 << 20)
    with open(src, "wb") as f:
        for _ in range(size_mb):
            f.write(block)
    times = []
    for _ in range(runs):
        dst.unlink(missing_ok=True)
        start = time.perf_counter()
        subprocess.run(["cp", str(src), str(dst)], check=True)
        times.append(time.perf_counter() - start)
    src.unlink()
    dst.unlink()
    return times


def run_system(root: Path, jobs: list, runs: int, settings: dict) -> list:
    """[(job folder, expected hasher)] run `runs` times each on one fresh POC system."""
    system = FlareSystem(root)
    try:
        system.prepare()
        system.set_server_settings(**settings)
        system.start()
        return [job_end_times(system, job, runs, hashed_by) for job, hashed_by in jobs]
    finally:
        system.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--train-seconds", type=float, default=5.0, help="job keeps running after the persist event")
    parser.add_argument(
        "--paths", nargs="+", choices=["local", "changed", "stream"], default=["local", "changed", "stream"]
    )
    parser.add_argument(
        "--drop-from-workspace", action="store_true", help="set model_publish_drop_from_workspace on both systems"
    )
    args = parser.parse_args()
    settings = {"model_publish_drop_from_workspace": True} if args.drop_from_workspace else {}

    local = changed = stream = []
    with tempfile.TemporaryDirectory(prefix="publish_bench_") as tmp:
        root = Path(tmp)
        common = {"size_mb": args.size_mb, "train_seconds": args.train_seconds, "log_sha256": False}
        job = file_model_job(root, name="big_model_job", **common)
        rewritten = file_model_job(root, name="big_model_rewritten", rewrite=True, **common)
        local_jobs = {"local": (job, "from the job process"), "changed": (rewritten, "computed by the store")}
        picked = [k for k in local_jobs if k in args.paths]
        if picked:
            found = dict(zip(picked, run_system(root / "local", [local_jobs[k] for k in picked], args.runs, settings)))
            local, changed = found.get("local", []), found.get("changed", [])
        if "stream" in args.paths:
            (stream,) = run_system(
                root / "stream",
                [(job, "computed by the store")],
                args.runs,
                {**settings, "model_publish_transfer": "stream"},
            )
        cp = cp_times(root, args.size_mb, args.runs)

    def modes(found):
        return ",".join(sorted({r["mode"] for r in found}))

    rows = []  # (name, job-end seconds, runs it came from)
    if local:
        rows.append((f"same-host ({modes(local)}), pre-hashed", [r["job_end"] for r in local], local))
    if changed:
        rows.append((f"same-host ({modes(changed)}), file changed", [r["job_end"] for r in changed], changed))
    if stream:
        rows.append(("streaming, pre-hashed", [r["job_end"] for r in stream], stream))
    rows.append(("cp", cp, None))
    if local:
        rows.append(("pre-hash (off the job-end path)", [r["prehash"] for r in local], None))
    cp_median = statistics.median(cp)
    print(f"\nPublishing a {args.size_mb} MB model at job end ({args.runs} runs each, seconds)\n")
    print(f"{'path':<36}{'median':>10}{'min':>10}{'max':>10}{'x cp':>8}{'server RSS +MiB':>17}{'job RSS MiB':>13}")
    result = {
        "size_mb": args.size_mb,
        "runs": args.runs,
        "train_seconds": args.train_seconds,
        "settings": settings,
        "paths": {},
    }
    for name, times, found in rows:
        median = statistics.median(times)
        rss = ""
        if found:
            server = max(r["server_rss_growth_mib"] for r in found)
            job_peak = max(r["job_rss_peak_mib"] for r in found)
            rss = f"{server:>17.1f}{job_peak:>13.0f}"
        print(f"{name:<36}{median:>10.3f}{min(times):>10.3f}{max(times):>10.3f}{median / cp_median:>8.2f}{rss}")
        result["paths"][name] = {"median": median, "min": min(times), "max": max(times), "times": times}
    result["runs_detail"] = {"local": local, "changed": changed, "stream": stream}
    print("(server RSS +MiB: the server parent's peak growth during the job; job RSS MiB: peak of the job's process)")
    if local:
        waited = max(r["waited"] for r in local)
        print(f"\njob end = wait for the pre-hasher (at most {waited:.2f}s here) + request to stored")
        same_host_ratio = statistics.median(rows[0][1]) / cp_median
        result["same_host_vs_cp"] = same_host_ratio
        result["target_met"] = same_host_ratio <= 2.0
        print(f"same-host / cp = {same_host_ratio:.2f} (target <= 2.0: {'met' if result['target_met'] else 'NOT met'})")
    write_result("publish_bench", result)


if __name__ == "__main__":
    main()
