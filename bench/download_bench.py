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
"""Benchmark: downloading a big model component, fork vs upstream paths vs a verified TLS ceiling.

    .venv-test/bin/python bench/download_bench.py            # 100 MB, 500 MB, 2 GB; 3 runs each
    .venv-test/bin/python bench/download_bench.py --quick    # 100 MB only (smoke test)
    .venv-test/bin/python bench/download_bench.py --scale-gb 8   # 500 MB reference + one 8 GB component

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
* a raw loopback TCP socket (sendfile -> recv_into + write), two processes: the host's
  ceiling, without TLS or hashing;
* the verified TLS ceiling, two processes without FLARE: a blocking Python ``ssl`` server
  with the POC server's certificate, key and root CA, in the TLS context FLARE's own
  drivers build (``net_utils.get_ssl_context``, client certificate required as on the POC
  listener), sends the file as one HTTP/1.1 response in 1 MiB ``sendall`` calls; the client,
  with the admin kit's certificate, reads it into 6 reused 1 MiB buffers on one thread
  while the main thread writes them to a temp file and a third thread sha256-hashes them
  (as the fork's admin client does: hashlib, the socket read and the write all release
  the GIL), and renames the file after the hash matched: the work the fork's admin client
  must do, and no more. The fork's ``download_job_component`` (direct) is reported as a
  fraction of it (goal >= 0.9).

The verified command must not be the slow one: ``download_job_component`` (which checks
the sha256) is also reported as a fraction of ``download_job_components (direct)`` (the
same bytes of the same job without any hash), goal >= 0.95.

``--scale-gb N`` runs only ``download_job_component`` (direct and ranges) and the two
ceilings, once on a 500 MB reference component and once on an N GB one, and checks that
admin and server RSS growth at N GB stays within the 500 MB growth (+ 16 MiB of noise),
that nothing is staged under the server's transfer folder and that every downloaded file
has the recorded sha256 (the bench re-hashes it after the timed call).

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

from bench_results import Sampler, write_result  # noqa: E402
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
    "verified TLS ceiling": ("direct", "tls"),
}
SCALE_PATHS = ["download_job_component", "download_job_component (ranges)", "socket", "verified TLS ceiling"]
UPSTREAM = "download_job_components (upstream)"
CEILING = "socket"
TLS_CEILING = "verified TLS ceiling"
DIRECT = "download_job_component"
GOAL = 0.9
UNVERIFIED = "download_job_components (direct)"  # the same job's bytes, no sha256: the verified one keeps its pace
UNVERIFIED_GOAL = 0.95
FLAT_SLACK_MIB = 16  # RSS noise allowed on top of the 500 MB growth in --scale-gb mode
SAMPLE = 0.02  # seconds between RSS / staging samples


# -- child processes ----------------------------------------------------------------------
class PeakRss(Sampler):
    """Samples one process's RSS in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int):
        import psutil

        super().__init__(SAMPLE)
        self.proc = psutil.Process(pid)
        self.base = self.peak = self.proc.memory_info().rss

    def sample(self):
        try:
            self.peak = max(self.peak, self.proc.memory_info().rss)
        except Exception:
            return False


def sha256_of(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(MIB)
            if not block:
                return digest.hexdigest()
            digest.update(block)


def child_flare(path: str, kit: str, job_id: str, dest: str, expected_sha: str = ""):
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
    # Not timed: the file on disk is the one the store holds (the client verified it too).
    if expected_sha and sha256_of(out) != expected_sha:
        raise SystemExit(f"{out}: sha256 is not the stored {expected_sha}")
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


# -- the verified TLS ceiling: two processes, no FLARE --------------------------------------
def tls_context(startup: str, server: bool):
    """The context FLARE's drivers build for this kit: same function, same parameters.

    The POC listener's connection security (fed_server.json / fed_admin.json) is used when
    the kit sets one; FLARE's default is mTLS (client certificate required).
    """
    from nvflare.fuel.f3.drivers import net_utils
    from nvflare.fuel.f3.drivers.driver_params import DriverParams

    params = {
        DriverParams.SCHEME.value: "https",
        DriverParams.CA_CERT.value: os.path.join(startup, net_utils.SSL_ROOT_CERT),
    }
    security = kit_connection_security(startup)
    if security:
        params[DriverParams.CONNECTION_SECURITY.value] = security
    if server:
        params[DriverParams.SERVER_CERT.value] = os.path.join(startup, net_utils.SSL_SERVER_CERT)
        params[DriverParams.SERVER_KEY.value] = os.path.join(startup, net_utils.SSL_SERVER_PRIVATE_KEY)
    else:
        params[DriverParams.CLIENT_CERT.value] = os.path.join(startup, net_utils.SSL_CLIENT_CERT)
        params[DriverParams.CLIENT_KEY.value] = os.path.join(startup, net_utils.SSL_CLIENT_PRIVATE_KEY)
    return net_utils.get_ssl_context(params, server)


def kit_connection_security(startup: str):
    """``connection_security`` of the kit's listener (server) or connection (admin), if set."""
    server, admin = os.path.join(startup, "fed_server.json"), os.path.join(startup, "fed_admin.json")
    if os.path.exists(server):
        section = json.load(open(server))["servers"][0]
    else:
        section = json.load(open(admin))["admin"]
    security = section.get("connection_security")
    if security == "clear":
        raise SystemExit(f"{startup}: the POC connection is not TLS (connection_security clear): no TLS ceiling")
    return security


def child_tls_serve(src: str, startup: str):
    """A one-response HTTPS server: blocking ``ssl`` socket, 1 MiB ``pread`` + ``sendall``."""
    ctx = tls_context(startup, server=True)
    size = os.path.getsize(src)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        print(listener.getsockname()[1], flush=True)
        raw, _ = listener.accept()
        cpu_started = time.process_time()
        with ctx.wrap_socket(raw, server_side=True) as conn, open(src, "rb", buffering=0) as f:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    raise SystemExit("the client closed before its request")
                request += chunk
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                + f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode()
            )
            buf = memoryview(bytearray(MIB))
            offset = 0
            while offset < size:
                n = os.preadv(f.fileno(), [buf], offset)
                if not n:
                    raise SystemExit(f"{src} got shorter at {offset}")
                conn.sendall(buf[:n])
                offset += n
            version, cipher = conn.version(), conn.cipher()[0]
    print(json.dumps({"cpu": time.process_time() - cpu_started, "tls": f"{version} {cipher}"}), flush=True)


def child_tls(src: str, server_startup: str, admin_startup: str, dest: str, expected_sha: str):
    """The client of the ceiling: reads, hashes, writes a temp file, renames it after the check."""
    import hashlib
    import queue

    server = subprocess.Popen(
        [sys.executable, __file__, "--child", "tls-serve", src, server_startup], stdout=subprocess.PIPE, text=True
    )
    port = int(server.stdout.readline())
    ctx = tls_context(admin_startup, server=False)
    size = os.path.getsize(src)
    final = os.path.join(dest, "tls.bin")
    with PeakRss(os.getpid()) as rss:
        started, cpu_started = time.perf_counter(), time.process_time()
        raw = socket.create_connection(("127.0.0.1", port))
        with ctx.wrap_socket(raw, server_hostname="localhost") as conn:
            conn.sendall(b"GET /component HTTP/1.1\r\nHost: localhost\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    raise SystemExit("the server closed before its headers")
                head += chunk
            head, body = head.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            length = [x.split(b":", 1)[1].strip() for x in lines if x.lower().startswith(b"content-length:")]
            if not head.startswith(b"HTTP/1.1 200") or length != [str(size).encode()]:
                raise SystemExit(f"unexpected response: {head!r}")
            free, full, hashing = queue.Queue(), queue.Queue(), queue.Queue(maxsize=4)
            for _ in range(6):  # as the fork's reader: 6 reused 1 MiB buffers
                free.put(memoryview(bytearray(MIB)))

            def read_all():
                got = len(body)
                while got < size:
                    buf = free.get()
                    want, n = min(MIB, size - got), 0
                    while n < want:
                        r = conn.recv_into(buf[n:want])
                        if not r:
                            full.put(EOFError(f"the response ended after {got + n} of {size} bytes"))
                            return
                        n += r
                    full.put((buf, n))
                    got += n
                full.put(None)

            def hash_all():  # as the fork's background_hash: a buffer is reused once hashed
                while True:
                    item = hashing.get()
                    if item is None:
                        return
                    buf, n = item
                    digest.update(buf[:n])
                    free.put(buf)

            reader = threading.Thread(target=read_all, daemon=True)
            hasher = threading.Thread(target=hash_all, daemon=True)
            reader.start()
            hasher.start()
            fd, tmp = tempfile.mkstemp(prefix="tls.bin.part-", dir=dest)
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb", buffering=0) as f:
                f.write(body)
                digest.update(body)
                while True:
                    item = full.get()
                    if item is None:
                        break
                    if isinstance(item, Exception):
                        raise SystemExit(str(item))
                    buf, n = item
                    f.write(buf[:n])
                    hashing.put((buf, n))
            hashing.put(None)
            hasher.join()
            reader.join()
        if digest.hexdigest() != expected_sha:
            os.unlink(tmp)
            raise SystemExit(f"sha256 {digest.hexdigest()} is not the stored {expected_sha}")
        os.rename(tmp, final)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    served = json.loads(server.stdout.readline())
    server.wait()
    os.unlink(final)
    result = {"seconds": seconds, "cpu": cpu, "rss_base": rss.base, "rss_peak": rss.peak}
    print(json.dumps({**result, "peer_cpu": served["cpu"], "tls": served["tls"]}))


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


def prepare_job(system: FlareSystem, root: Path, size: int, model: Path = None, workspace_zip: bool = True) -> tuple:
    """(job id, sha256) of a finished job whose store holds a MODEL_bench of ``size`` bytes.

    ``model``: an existing file to move into the store (--scale-gb: one file, hard-linked
    into both systems' stores, so N GB are on disk once).
    """
    job_id, meta = system.submit_and_wait(write_numpy_job(root / f"job_{size}", n_clients=1))
    if meta.get("status") != "FINISHED:COMPLETED":
        raise RuntimeError(f"bench job {job_id} ended {meta.get('status')}\n{system.tail_console()}")
    if model is None:
        model = root / "model.bin"
        write_model(model, size)
    if workspace_zip:
        # download_job moves the workspace: make it a zip holding the same model.
        with zipfile.ZipFile(system.job_store_dir(job_id) / "workspace", "w", zipfile.ZIP_STORED) as z:
            z.write(model, "app_server/FL_global_model.pt")
    record = JobStore(system.jobs_storage).put(job_id, COMPONENT, str(model), file_name="bench", move=True)
    return job_id, record["sha256"]


def measure(system: FlareSystem, path: str, job_id: str, dest: Path, sha: str) -> dict:
    component = str(system.job_store_dir(job_id) / COMPONENT)
    if path == "socket":
        args = ["--child", "socket", component, str(dest)]
    elif path == "tls":
        admin_startup = str(system.kit() / "startup")
        args = ["--child", "tls", component, str(system.server_dir / "startup"), admin_startup, str(dest), sha]
    else:
        args = ["--child", path, str(system.kit()), job_id, str(dest)]
        if path == "download_job_component":
            args.append(sha)
    os.sync()  # untimed: the previous row's written pages do not slow this one's writes
    server = PeakRss(server_parent(system).pid)
    transfer = system.server_transfer_dir
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
    # The TLS ceiling's server is its own process: its CPU, not the idle FLARE server's.
    server_cpu = result.pop("peer_cpu", server_cpu)
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
        if "tls" in results[0]:
            rows[path]["tls"] = results[0]["tls"]
    for row in rows.values():
        for key, base in (
            ("x_upstream", UPSTREAM),
            ("x_socket", CEILING),
            ("x_tls", TLS_CEILING),
            ("x_unverified", UNVERIFIED),
        ):
            row[key] = row["mb_per_s"] / rows[base]["mb_per_s"] if base in rows else None
    return rows


def _ratio(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def print_table(size: int, rows: dict, runs: int):
    print(f"\n{size / MB:.0f} MB component, median of {runs} run{'s' if runs > 1 else ''}")
    head = (
        f"{'path':<36}{'s':>8}{'MB/s':>8}{'x upstr':>9}{'x sock':>8}{'x tls':>7}"
        f"{'admin RSS +MiB':>16}{'server RSS +MiB':>17}{'staged B':>10}{'admin CPU s':>13}{'server CPU s':>14}"
    )
    print(head)
    print("-" * len(head))
    for path, r in rows.items():
        print(
            f"{path:<36}{r['seconds']:>8.2f}{r['mb_per_s']:>8.0f}{_ratio(r['x_upstream']):>9}{_ratio(r['x_socket']):>8}"
            f"{_ratio(r['x_tls']):>7}{r['admin_rss_growth_mib']:>16.1f}{r['server_rss_growth_mib']:>17.1f}"
            f"{r['staged_bytes']:>10}{r['admin_cpu_s']:>13.2f}{r['server_cpu_s']:>14.2f}"
        )
    for line in verdict_lines(size, rows):
        print(f">>> {line}")


def _met(value, goal) -> str:
    return "-" if value is None else f"{value:.2f} (goal >= {goal}: {'met' if value >= goal else 'NOT met'})"


def verdict_lines(size: int, rows: dict) -> list:
    """The two goals of the verified path, for one size: against the TLS ceiling and against the unverified download."""
    lines = []
    if DIRECT in rows and TLS_CEILING in rows:
        lines.append(
            f"{DIRECT} / {TLS_CEILING} = {_met(rows[DIRECT]['x_tls'], GOAL)}"
            f"  [{size / MB:.0f} MB; ceiling {rows[TLS_CEILING]['mb_per_s']:.0f} MB/s, {rows[TLS_CEILING].get('tls', '')}]"
        )
    if DIRECT in rows and UNVERIFIED in rows:
        lines.append(
            f"{DIRECT} / {UNVERIFIED} = {_met(rows[DIRECT]['x_unverified'], UNVERIFIED_GOAL)}"
            f"  [{size / MB:.0f} MB; {rows[DIRECT]['mb_per_s']:.0f} vs {rows[UNVERIFIED]['mb_per_s']:.0f} MB/s]"
        )
    return lines


def scale_verdict(reference: dict, big: dict) -> dict:
    """Flat memory and nothing staged at N GB, judged against the 500 MB run of the same invocation."""
    verdict = {}
    for path in (DIRECT, "download_job_component (ranges)"):
        ref, row = reference[path], big[path]
        checks = {
            "admin_rss_flat": row["admin_rss_growth_mib"] <= ref["admin_rss_growth_mib"] + FLAT_SLACK_MIB,
            "server_rss_flat": row["server_rss_growth_mib"] <= ref["server_rss_growth_mib"] + FLAT_SLACK_MIB,
            "nothing_staged": row["staged_bytes"] == 0,
            "sha256_verified": True,  # a mismatch fails the child, and the bench with it
        }
        verdict[path] = checks
    return verdict


def print_scale(size: int, reference: dict, big: dict, verdict: dict):
    print(f"\nScale: {size / MB:.0f} MB against the 500 MB reference (RSS bound: 500 MB growth + {FLAT_SLACK_MIB} MiB)")
    for path, checks in verdict.items():
        ref, row = reference[path], big[path]
        print(
            f"{path:<36}{row['seconds']:>8.1f} s{row['mb_per_s']:>6.0f} MB/s  "
            f"admin RSS +{row['admin_rss_growth_mib']:.1f} MiB (500 MB: +{ref['admin_rss_growth_mib']:.1f})  "
            f"server RSS +{row['server_rss_growth_mib']:.1f} MiB (500 MB: +{ref['server_rss_growth_mib']:.1f})  "
            f"staged {row['staged_bytes']} B  sha256 verified  -> {'OK' if all(checks.values()) else 'FAILED'}"
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
    parser.add_argument("--runs", type=int, help="runs per path and size (default 3; 1 with --scale-gb)")
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=list(PATHS),
        metavar="PATH",
        help=f"only these rows (default all): {', '.join(repr(p) for p in PATHS)}",
    )
    parser.add_argument(
        "--scale-gb",
        type=float,
        help="scale mode: download_job_component (direct, ranges) and the ceilings only, on a 500 MB reference and "
        "on one component of this many GB (10^9 bytes); needs ~2x that free in the temp folder",
    )
    args = parser.parse_args()
    scale = args.scale_gb is not None
    runs_per = args.runs or (1 if scale else 3)
    if scale:
        sizes = [500 * MB, int(args.scale_gb * 1000) * MB]
        paths = {label: PATHS[label] for label in SCALE_PATHS}
    else:
        sizes = [s * MB for s in (args.sizes_mb or ([100] if args.quick else [100, 500, 2000]))]
        paths = {label: PATHS[label] for label in (args.paths or PATHS)}

    import nvflare

    result = {
        "command": " ".join([os.path.relpath(sys.executable, REPO), *sys.argv]),
        "machine": machine(),
        "nvflare": nvflare.__version__,
        "runs": runs_per,
        "sizes": {},
    }
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="download_bench_") as tmp:
        root = Path(tmp)
        needed = {system for system, _ in paths.values()} | ({"direct", "off"} if scale else set())
        systems = {name: FlareSystem(root / name, n_clients=1) for name in ("direct", "off") if name in needed}
        try:
            for name, system in systems.items():
                system.prepare()
                if name == "off":
                    system.set_server_settings(admin_download_direct=False)
                system.start()
            summaries = {}
            for size in sizes:
                jobs = {}
                if scale:  # one file on disk, hard-linked into both stores; no workspace zip
                    model = root / "scale_model.bin"
                    write_model(model, size)
                    os.link(model, root / "scale_model_off.bin")
                    jobs["direct"] = prepare_job(systems["direct"], root / "direct", size, model, workspace_zip=False)
                    jobs["off"] = prepare_job(
                        systems["off"], root / "off", size, root / "scale_model_off.bin", workspace_zip=False
                    )
                else:
                    jobs = {name: prepare_job(system, root / name, size) for name, system in systems.items()}
                dest = root / "dest"
                dest.mkdir(exist_ok=True)
                runs = {p: [] for p in paths}
                for _ in range(runs_per):
                    for label, (name, kind) in paths.items():  # interleaved: background load hits all alike
                        job_id, sha = jobs[name]
                        runs[label].append(measure(systems[name], kind, job_id, dest, sha))
                rows = summarize(size, runs)
                print_table(size, rows, runs_per)
                summaries[size] = rows
                result["sizes"][str(size)] = {"job_ids": jobs, "summary": rows, "runs": runs}
                for name, system in systems.items():
                    shutil.rmtree(system.job_store_dir(jobs[name][0]), ignore_errors=True)  # free the disk
            print(f"\nThe verified path ({DIRECT}), every size:")
            for size, rows in summaries.items():
                for line in verdict_lines(size, rows):
                    print(f"  {size / MB:>6.0f} MB  {line}")
            result["tls_ceiling_fraction"] = {
                str(size): rows[DIRECT]["x_tls"] for size, rows in summaries.items() if DIRECT in rows
            }
            result["unverified_fraction"] = {
                str(size): rows[DIRECT].get("x_unverified") for size, rows in summaries.items() if DIRECT in rows
            }
            if scale:
                verdict = scale_verdict(summaries[sizes[0]], summaries[sizes[1]])
                print_scale(sizes[1], summaries[sizes[0]], summaries[sizes[1]], verdict)
                result["scale"] = {"size": sizes[1], "reference_size": sizes[0], "verdict": verdict}
        finally:
            for system in systems.values():
                system.stop()
    result["elapsed_s"] = time.time() - started
    tag = "download_bench_scale" if scale else "download_bench"
    write_result(tag, result)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "socket":
            child_socket(*rest)
        elif kind == "socket-send":
            child_socket_send(*rest)
        elif kind == "tls":
            child_tls(*rest)
        elif kind == "tls-serve":
            child_tls_serve(*rest)
        else:
            child_flare(kind, *rest)
    else:
        main()
