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
"""Benchmark: downloading a big model component, fork vs upstream paths vs a raw socket.

    .venv-test/bin/python bench/download_bench.py            # 100 MB, 500 MB, 2 GB; 3 runs each
    .venv-test/bin/python bench/download_bench.py --quick    # 100 MB only (smoke test)

Starts two real POC systems (server + 1 client each) in a temp folder: one as shipped, one
with admin_download_direct=false, i.e. the fork's command on its range transfer and
upstream's two paths exactly as upstream 2.9.0 runs them. On each it runs a one-round job
per size and puts a MODEL_bench component of that size into the job's store (random 1 MiB
blocks, repeated), plus the same file zipped (stored, not compressed) as the job's
workspace, so download_job moves the same bytes. Then, interleaved and several times:

* ``download_job_component``: direct (one HTTPS response) and ranges (direct off);
* ``download_job_components`` (also fetches the small logs): direct, and upstream
  (DownloadService, 5 MiB chunks) - the baseline of ``x upstr``;
* ``download_job`` (the workspace zip, unzipped by the admin client): direct, and upstream;
* a raw loopback TCP socket (sendfile -> recv_into + write), two processes: the ceiling.

Each download runs in its own admin process (a FLARE API session), which samples its own
RSS; this process samples the server parent's RSS and the bytes staged in real files
(not symlinks) under the server's transfer folder. Medians are printed as a table and
written with every run to bench/results/download_bench_<time>.json.
"""

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))

from flare_system import FlareSystem  # noqa: E402
from job_components import JobStore, write_numpy_job  # noqa: E402

MB = 1000 * 1000
MIB = 1024 * 1024
COMPONENT = "MODEL_bench"
# row label -> (system: "direct" as shipped / "off" with admin_download_direct=false, what to run)
PATHS = {
    "download_job_component": ("direct", "download_job_component"),
    "download_job_component (ranges)": ("off", "download_job_component"),
    "download_job_components (direct)": ("direct", "download_job_components"),
    "download_job_components (upstream)": ("off", "download_job_components"),
    "download_job (direct)": ("direct", "download_job"),
    "download_job (upstream)": ("off", "download_job"),
    "socket": ("direct", "socket"),
}
UPSTREAM = "download_job_components (upstream)"
CEILING = "socket"
SAMPLE = 0.02  # seconds between RSS / staging samples


# -- child processes ----------------------------------------------------------------------
class PeakRss:
    """Samples one process's RSS in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int):
        import psutil

        self.proc = psutil.Process(pid)
        self.base = self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except Exception:
                return
            self.stop.wait(SAMPLE)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def child_flare(path: str, kit: str, job_id: str, dest: str):
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    sess = new_secure_session("admin@nvidia.com", kit, timeout=60)
    try:
        with PeakRss(os.getpid()) as rss:
            started, cpu_started = time.perf_counter(), time.process_time()
            if path == "download_job_component":
                out = sess.download_job_component(job_id, COMPONENT, dest)
            elif path == "download_job_components":
                out = sess.download_job_components(job_id)
            else:
                out = sess.download_job_result(job_id)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        sess.close()
    shutil.rmtree(out, ignore_errors=True) if os.path.isdir(out) else os.unlink(out)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_base": rss.base, "rss_peak": rss.peak}))


def child_socket(src: str, dest: str):
    """Receiver: accepts one connection from a sender process and writes what it gets."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        sender = subprocess.Popen([sys.executable, __file__, "--child", "socket-send", src, str(port)])
        with PeakRss(os.getpid()) as rss:
            conn, _ = listener.accept()
            started, cpu_started = time.perf_counter(), time.process_time()
            buf = memoryview(bytearray(MIB))
            with conn, open(os.path.join(dest, "socket.bin"), "wb", buffering=0) as f:
                while True:
                    n = conn.recv_into(buf)
                    if not n:
                        break
                    f.write(buf[:n])
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        sender.wait()
    os.unlink(os.path.join(dest, "socket.bin"))
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_base": rss.base, "rss_peak": rss.peak}))


def child_socket_send(src: str, port: str):
    with socket.create_connection(("127.0.0.1", int(port))) as s, open(src, "rb") as f:
        s.sendfile(f)


# -- the parent -----------------------------------------------------------------------------
def staged_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                try:
                    total += os.path.getsize(p)
                except OSError:
                    pass
    return total


def server_parent(system: FlareSystem):
    for p in system.workspace_processes():
        cmd = " ".join(p.cmdline())
        if "server_train" in cmd and str(system.server_dir) in cmd:
            return p
    raise RuntimeError("server parent process not found")


def write_model(path: Path, size: int):
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(block[: min(MIB, left)])
            left -= MIB


def prepare_job(system: FlareSystem, root: Path, size: int) -> str:
    job_id, meta = system.submit_and_wait(write_numpy_job(root / f"job_{size}", n_clients=1))
    if meta.get("status") != "FINISHED:COMPLETED":
        raise RuntimeError(f"bench job {job_id} ended {meta.get('status')}\n{system.tail_console()}")
    model = root / "model.bin"
    write_model(model, size)
    JobStore(system.jobs_storage).put(job_id, COMPONENT, str(model))
    # download_job moves the workspace: make it a zip holding the same model.
    with zipfile.ZipFile(system.job_store_dir(job_id) / "workspace", "w", zipfile.ZIP_STORED) as z:
        z.write(model, "app_server/FL_global_model.pt")
    model.unlink()
    return job_id


def measure(system: FlareSystem, path: str, job_id: str, dest: Path) -> dict:
    if path == CEILING:
        args = ["--child", "socket", str(system.job_store_dir(job_id) / COMPONENT), str(dest)]
    else:
        args = ["--child", path, str(system.kit()), job_id, str(dest)]
    server = PeakRss(server_parent(system).pid)
    transfer = system.server_dir / "transfer"
    staged = 0
    server_cpu = sum(server.proc.cpu_times()[:2])
    with server:
        proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, env=system.env)
        while proc.poll() is None:
            staged = max(staged, staged_bytes(transfer))
            time.sleep(SAMPLE)
        out = proc.stdout.read()
    # The whole child's life (session set-up included): an upper bound for the download.
    server_cpu = sum(server.proc.cpu_times()[:2]) - server_cpu
    if proc.returncode != 0:
        raise RuntimeError(f"{path} failed ({proc.returncode}): {out}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(server_rss_base=server.base, server_rss_peak=server.peak, staged=staged, server_cpu=server_cpu)
    return result


def summarize(size: int, runs: dict) -> dict:
    rows = {}
    for path, results in runs.items():
        secs = statistics.median(r["seconds"] for r in results)
        rows[path] = {
            "seconds": secs,
            "mb_per_s": size / MB / secs,
            "admin_rss_growth_mib": statistics.median((r["rss_peak"] - r["rss_base"]) / MIB for r in results),
            "admin_rss_peak_mib": statistics.median(r["rss_peak"] / MIB for r in results),
            "server_rss_growth_mib": statistics.median(
                (r["server_rss_peak"] - r["server_rss_base"]) / MIB for r in results
            ),
            "staged_bytes": max(r["staged"] for r in results),
            "admin_cpu_s": statistics.median(r["cpu"] for r in results),
            "server_cpu_s": statistics.median(r["server_cpu"] for r in results),
        }
    for row in rows.values():
        row["x_upstream"] = row["mb_per_s"] / rows[UPSTREAM]["mb_per_s"]
        row["x_socket"] = row["mb_per_s"] / rows[CEILING]["mb_per_s"]
    return rows


def print_table(size: int, rows: dict, runs: int):
    print(f"\n{size / MB:.0f} MB component, median of {runs} runs")
    head = (
        f"{'path':<36}{'s':>8}{'MB/s':>8}{'x upstr':>9}{'x sock':>8}"
        f"{'admin RSS +MiB':>16}{'server RSS +MiB':>17}{'staged B':>10}{'admin CPU s':>13}{'server CPU s':>14}"
    )
    print(head)
    print("-" * len(head))
    for path, r in rows.items():
        print(
            f"{path:<36}{r['seconds']:>8.2f}{r['mb_per_s']:>8.0f}{r['x_upstream']:>9.2f}{r['x_socket']:>8.2f}"
            f"{r['admin_rss_growth_mib']:>16.1f}{r['server_rss_growth_mib']:>17.1f}{r['staged_bytes']:>10}"
            f"{r['admin_cpu_s']:>13.2f}{r['server_cpu_s']:>14.2f}"
        )


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(int(x.split()[1]) * 1024 for x in open("/proc/meminfo") if x.startswith("MemTotal"))
    except OSError:
        mem = None
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_bytes": mem,
        "python": platform.python_version(),
        "load_avg_at_start": os.getloadavg(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 MB only")
    parser.add_argument("--sizes-mb", type=int, nargs="+", help="component sizes in MB (default 100 500 2000)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [s * MB for s in (args.sizes_mb or ([100] if args.quick else [100, 500, 2000]))]

    import nvflare

    result = {
        "command": " ".join([os.path.relpath(sys.executable, REPO), *sys.argv]),
        "machine": machine(),
        "nvflare": nvflare.__version__,
        "runs": args.runs,
        "sizes": {},
    }
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="download_bench_") as tmp:
        root = Path(tmp)
        systems = {"direct": FlareSystem(root / "direct", n_clients=1), "off": FlareSystem(root / "off", n_clients=1)}
        try:
            for name, system in systems.items():
                system.prepare()
                if name == "off":
                    system.set_server_settings(admin_download_direct=False)
                system.start()
            for size in sizes:
                jobs = {name: prepare_job(system, root / name, size) for name, system in systems.items()}
                dest = root / "dest"
                dest.mkdir(exist_ok=True)
                runs = {p: [] for p in PATHS}
                for _ in range(args.runs):
                    for label, (name, kind) in PATHS.items():  # interleaved: background load hits all alike
                        runs[label].append(measure(systems[name], kind, jobs[name], dest))
                rows = summarize(size, runs)
                print_table(size, rows, args.runs)
                result["sizes"][str(size)] = {"job_ids": jobs, "summary": rows, "runs": runs}
                for name, system in systems.items():
                    shutil.rmtree(system.job_store_dir(jobs[name]), ignore_errors=True)  # free the disk
        finally:
            for system in systems.values():
                system.stop()
    result["elapsed_s"] = time.time() - started
    out = REPO / "bench" / "results" / f"download_bench_{time.strftime('%Y%m%d_%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "socket":
            child_socket(*rest)
        elif kind == "socket-send":
            child_socket_send(*rest)
        else:
            child_flare(kind, *rest)
    else:
        main()
