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
"""Benchmark: does downloading a big component disturb a job that is training?

    .venv-test/bin/python bench/interference_bench.py           # 64 MB model, 2 GB component, 20 rounds/phase (~30 min)
    .venv-test/bin/python bench/interference_bench.py --quick   # 8 MB model, 200 MB component, 4 rounds/phase (~6 min)

For each variant (default: ``direct`` as shipped, ``direct-unpaced`` with
admin_download_rate_limit=0, ``ranges`` with admin_download_direct=false, ``attacker``: as
shipped, with a lead flooding range requests of its own download) it starts a real
POC system (server + 2 sites) in a temp folder, runs a 1-round job and puts a component of
``--component-mb`` into its store (as bench/download_bench.py does), then:

* ``alone``: one download of it with no job running (the download's own speed; the pace
  applies only while a job runs);
* submits a FedAvg job (bench/interference_components.py: a ``--model-mb`` numpy model,
  trivial training, rounds until told to stop) and runs the phases, each until
  ``--rounds`` rounds fell entirely inside it:
  ``no download`` (baseline), ``1 download`` (one admin downloading back to back),
  ``4 downloads`` (four admins, each back to back). The ``attacker`` variant's phases are
  ``no download``, ``flood`` (the review's attack of issue 21: the POC's lead, who owns the
  component's job here, keeps 40 threads asking for 2 MiB ranges and 130 for 1 byte of
  three downloads of it, each request sent again as soon as it is answered or refused:
  tests/support/range_flood.py, a process of its own at the admins' nice level) and
  ``flood + 1 dl`` (the same, while project_admin downloads back to back).

Each admin is its own process with its own FLARE API session (``--admin-nice N`` runs
them at that nice level: a stand-in for an admin on another host; labelled in the output).

What is measured, per phase:

* round time: from the controller scheduling the task to both results in and averaged;
* task latency: from the controller's stamp in the task (``bench_sent``) to the site's
  executor starting on it (the site's poll interval, the model's transfer and decoding);
  result latency: from the executor's reply to the server's result callback. Same host,
  same clock;
* the server's responsiveness and the sites' heartbeats, probed every 0.5 s by a
  ``check_status server`` (FLARE API get_system_info) from this process
  (tests/support/server_probe.py): the command's latency, the sites it lists (a dropped
  site disappears) and each site's last heartbeat time (the largest gap between two
  heartbeats the server received);
* failures: rounds that did not get both results (task timed out or failed), and every
  server/site log line that says a client was removed/dead, a task timed out or failed;
* downloads: how many finished (each verified by the admin client: size + sha256), their
  median MB/s, and the phase's aggregate MB/s.

Target (issue 15): no site dropped, no task failure, median round time at most +25 %
against ``no download``; under the flood (issue 21) the same, and the flood's refusals are
counted with their latency (the ``refused`` line under the table). The table is printed and written with every sample to
bench/results/interference_bench_<time>.json.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))
sys.path.insert(0, str(REPO / "bench"))

from bench_results import write_result  # noqa: E402
from download_bench import machine, measure, sha256_of, write_model  # noqa: E402
from flare_system import FlareSystem  # noqa: E402
from job_components import LEAD, JobStore, write_numpy_job  # noqa: E402
from range_flood import Flood  # noqa: E402
from server_probe import ServerProbe, heartbeat_gaps  # noqa: E402

MB = 1000 * 1000
COMPONENT = "MODEL_bench"
TARGET_SLOWDOWN = 0.25
PROBE_INTERVAL = 0.5
# variant -> server settings (local/resources.json)
VARIANTS = {
    "direct": {},
    "direct-unpaced": {"admin_download_rate_limit": 0},
    "ranges": {"admin_download_direct": False},
    "attacker": {},
}
# (label, admins downloading, flood on)
PHASES = (("no download", 0, False), ("1 download", 1, False), ("4 downloads", 4, False))
ATTACK_PHASES = (("no download", 0, False), ("flood", 0, True), ("flood + 1 dl", 1, True))
FLOOD = {"transfers": 3, "big": 40, "small": 130}
# Log lines that mean a site was dropped, a heartbeat missed or a task lost.
ALARMS = re.compile(
    r"dead client|Remove the dead|dead job|client dead|timed out|timeout|task .*fail|Failed to send|"
    r"lost connection|not responding|removed client|BENCH .*returned|BENCH late",
    re.I,
)
# Lines that match ALARMS but are configuration or normal chatter, not an event.
NOT_ALARMS = re.compile(r"timeout=|_timeout|timeout:|Timeout\)|set timeout|progress_timeout", re.I)
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})")


def component_job(system: FlareSystem, root: Path, component_path: Path, user: str) -> str:
    """A finished job of ``user`` with the component in its store (written once, copied per system)."""
    job_id, meta = system.submit_and_wait(write_numpy_job(root / "component_job", n_clients=2), user=user)
    if meta.get("status") != "FINISHED:COMPLETED":
        raise RuntimeError(f"component job {job_id} ended {meta.get('status')}\n{system.tail_console()}")
    JobStore(system.jobs_storage).put(job_id, COMPONENT, str(component_path))
    return job_id


# -- the job --------------------------------------------------------------------------------
def write_job(folder: Path, model_mb: int, record_file: Path, stop_file: Path, task_timeout: float) -> Path:
    config = folder / "app" / "config"
    custom = folder / "app" / "custom"
    config.mkdir(parents=True, exist_ok=True)
    custom.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "bench" / "interference_components.py", custom / "interference_components.py")
    meta = {"name": "interference", "resource_spec": {}, "min_clients": 2, "deploy_map": {"app": ["@ALL"]}}
    server = {
        "format_version": 2,
        "workflows": [
            {
                "id": "fedavg",
                "path": "interference_components.TimedFedAvg",
                "args": {
                    "model_mb": model_mb,
                    "task_timeout": task_timeout,
                    "stop_file": str(stop_file),
                    "record_file": str(record_file),
                },
            }
        ],
        "components": [],
    }
    client = {
        "format_version": 2,
        "executors": [{"tasks": ["train"], "executor": {"path": "interference_components.TimedTrainer"}}],
        "components": [],
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    (config / "config_fed_server.json").write_text(json.dumps(server, indent=2))
    (config / "config_fed_client.json").write_text(json.dumps(client, indent=2))
    return folder


def read_rounds(record_file: Path) -> list:
    if not record_file.exists():
        return []
    return [json.loads(line) for line in record_file.read_text().splitlines() if line.strip()]


# -- admins downloading (child processes) -------------------------------------------------
def child_download(kit: str, job_id: str, dest: str, stop_file: str, nice: str, once: str):
    """One admin: a session, downloads back to back until ``stop_file`` exists; a JSON line each."""
    if int(nice):
        os.nice(int(nice))
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    sess = new_secure_session("admin@nvidia.com", kit, timeout=60)
    print(json.dumps({"ready": time.time()}), flush=True)
    try:
        while not os.path.exists(stop_file):
            started = time.time()
            try:
                out = sess.download_job_component(job_id, COMPONENT, dest)
                rec = {"start": started, "end": time.time(), "bytes": os.path.getsize(out)}
                os.unlink(out)
            except Exception as e:
                rec = {"start": started, "end": time.time(), "error": f"{type(e).__name__}: {e}"}
            print(json.dumps(rec), flush=True)
            if once == "1":
                break
    finally:
        sess.close()


class Admins:
    """``n`` admin processes downloading back to back from the moment they log in."""

    def __init__(self, system: FlareSystem, job_id: str, n: int, root: Path, nice: int, once: bool = False):
        self.stop_file = root / f"stop_admins_{time.time_ns()}"
        self.procs = []
        for i in range(n):
            dest = root / f"dest{i}"
            dest.mkdir(exist_ok=True)
            args = [str(system.kit()), job_id, str(dest), str(self.stop_file), str(nice), "1" if once else "0"]
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--child", *args],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    env=system.env,
                )
            )
        self.records = []
        self.ready = []
        self.readers = [threading.Thread(target=self._read, args=(p,), daemon=True) for p in self.procs]
        for t in self.readers:
            t.start()

    def _read(self, proc):
        for line in proc.stdout:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            (self.ready if "ready" in rec else self.records).append(rec)

    def wait_ready(self, timeout=120) -> float:
        deadline = time.time() + timeout
        while len(self.ready) < len(self.procs):
            if time.time() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError("an admin process did not log in")
            time.sleep(0.1)
        return max(r["ready"] for r in self.ready)

    def stop(self, timeout=900):
        """No new downloads; wait for the ones under way."""
        self.stop_file.touch()
        for p in self.procs:
            p.wait(timeout)
        for t in self.readers:
            t.join()


def log_alarms(system: FlareSystem) -> list:
    """(time, file, line) of every alarming log line of the server and the sites."""
    found = []
    for log in system.workspace.rglob("log*.txt"):
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if ALARMS.search(line) and not NOT_ALARMS.search(line):
                m = LOG_TIME.match(line)
                t = (
                    datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(m.group(2)) / 1000
                    if m
                    else None
                )
                found.append({"t": t, "file": str(log.relative_to(system.workspace)), "line": line[:300]})
    return found


# -- phases ---------------------------------------------------------------------------------
def pctl(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def median(values):
    return statistics.median(values) if values else None


def run_phase(system, job_id, record_file, n_admins, rounds, root, nice, max_seconds, flood=False) -> dict:
    attack = None
    if flood:
        stop = root / f"stop_flood_{time.time_ns()}"
        attack = Flood(system, LEAD, job_id, COMPONENT, stop, seconds=max_seconds + 600, nice=nice, **FLOOD)
        attack.wait_ready()
    admins = Admins(system, job_id, n_admins, root, nice) if n_admins else None
    start = admins.wait_ready() if admins else time.time()
    deadline = time.time() + max_seconds
    while True:
        inside = [r for r in read_rounds(record_file) if r["start"] >= start]
        downloads_done = not admins or any("bytes" in r for r in admins.records)
        if (len(inside) >= rounds and downloads_done) or time.time() > deadline:
            break
        time.sleep(0.5)
    end = time.time()
    if admins:
        admins.stop()
    return {
        "start": start,
        "end": end,
        "downloads": admins.records if admins else [],
        "timed_out": time.time() > deadline,
        "flood": attack.stop() if attack else None,
    }


def summarize_phase(phase: dict, all_rounds: list, samples: list, alarms: list, n_clients: int) -> dict:
    start, end = phase["start"], phase["end"]
    rounds = [r for r in all_rounds if r["start"] >= start and r["end"] <= end]
    times = [r["end"] - r["start"] for r in rounds]
    task_lat = [c["received"] - r["start"] for r in rounds for c in r["results"].values()]
    result_lat = [c["result_at"] - c["replied"] for r in rounds for c in r["results"].values()]
    failed = [r["round"] for r in rounds if len(r["results"]) < n_clients]
    probes = [s for s in samples if start <= s["t"] <= end]
    probe_lat = [s["latency"] for s in probes]
    probe_errors = [s["error"] for s in probes if "error" in s]
    seen = [len(s["clients"]) for s in probes if "clients" in s]
    gaps = heartbeat_gaps(samples, start, end)
    downloads = [d for d in phase["downloads"] if "bytes" in d]
    rates = [d["bytes"] / MB / (d["end"] - d["start"]) for d in downloads]
    aggregate = None
    if downloads:
        span = max(d["end"] for d in downloads) - min(d["start"] for d in downloads)
        aggregate = sum(d["bytes"] for d in downloads) / MB / span
    # A download that ran past the phase's end still loads the server: count its alarms too.
    tail = max([end] + [d["end"] for d in phase["downloads"]])
    return {
        "rounds": len(rounds),
        "round_s_median": median(times),
        "round_s_p95": pctl(times, 0.95),
        "task_latency_s_median": median(task_lat),
        "task_latency_s_p95": pctl(task_lat, 0.95),
        "result_latency_s_median": median(result_lat),
        "result_latency_s_p95": pctl(result_lat, 0.95),
        "failed_rounds": failed,
        "probe_s_median": median(probe_lat),
        "probe_s_p95": pctl(probe_lat, 0.95),
        "probe_s_max": max(probe_lat) if probe_lat else None,
        "probe_errors": probe_errors,
        "clients_seen_min": min(seen) if seen else 0,
        "heartbeat_gap_s_max": max(gaps) if gaps else None,
        "heartbeats": len(gaps),
        "alarms": [a for a in alarms if a["t"] is not None and start <= a["t"] <= tail],
        "downloads_ok": len(downloads),
        "download_errors": [d["error"] for d in phase["downloads"] if "error" in d],
        "download_mb_s_median": median(rates),
        "download_mb_s_aggregate": aggregate,
        "phase_timed_out": phase["timed_out"],
    }


def verdict(row: dict, base: dict, n_clients: int) -> str:
    problems = []
    if row["clients_seen_min"] < n_clients:
        problems.append("site dropped")
    if row["failed_rounds"]:
        problems.append("task failed")
    if row["alarms"]:
        problems.append("log alarms")
    if row["download_errors"]:
        problems.append("download failed")
    if row["rounds"] == 0 or base["round_s_median"] is None:
        problems.append("no rounds")
    elif row["round_s_median"] > base["round_s_median"] * (1 + TARGET_SLOWDOWN):
        problems.append(f"rounds +{(row['round_s_median'] / base['round_s_median'] - 1) * 100:.0f} %")
    return "ok" if not problems else ", ".join(problems)


def run_variant(name, settings, args, root: Path, component_path: Path) -> dict:
    vroot = root / name
    system = FlareSystem(vroot, n_clients=2)
    out = {"settings": settings}
    try:
        system.prepare()
        if settings:
            system.set_server_settings(**settings)
        system.start()
        # the attacker floods a download of its own job's component (a lead may download its own jobs)
        comp_job = component_job(system, vroot, component_path, LEAD if name == "attacker" else "admin@nvidia.com")
        out["component_job"] = comp_job

        # The download alone: no job running.
        alone = Admins(system, comp_job, 1, vroot, args.admin_nice, once=True)
        alone.wait_ready()
        alone.stop()
        out["alone"] = alone.records
        rates = [r["bytes"] / MB / (r["end"] - r["start"]) for r in alone.records if "bytes" in r]
        out["alone_mb_s"] = rates[0] if rates else None
        if name == "direct":
            # The verified TLS ceiling on the same file, host and certificates (download_bench's
            # row): what the alone download is a fraction of.
            (vroot / "tls").mkdir(exist_ok=True)
            tls = measure(system, "tls", comp_job, vroot / "tls", sha256_of(str(component_path)))
            out["tls_ceiling_mb_s"] = component_path.stat().st_size / MB / tls["seconds"]
            shutil.rmtree(vroot / "tls", ignore_errors=True)

        record_file, stop_file = vroot / "rounds.jsonl", vroot / "stop_training"
        job = write_job(vroot / "train_job", args.model_mb, record_file, stop_file, args.task_timeout)
        samples_box = []
        with system.session() as sess, ServerProbe(system, interval=PROBE_INTERVAL) as probe:
            train_id = sess.submit_job(str(job))
            out["train_job"] = train_id
            deadline = time.time() + 300
            while len(read_rounds(record_file)) < args.warmup:
                if time.time() > deadline:
                    raise RuntimeError(f"training did not start\n{system.tail_console()}")
                time.sleep(0.5)
            phases = {}
            for label, n, flood in ATTACK_PHASES if name == "attacker" else PHASES:
                print(f"  [{name}] {label} ...", flush=True)
                phases[label] = run_phase(
                    system, comp_job, record_file, n, args.rounds, vroot, args.admin_nice, args.phase_max_seconds, flood
                )
                time.sleep(args.settle)
            stop_file.touch()
            sess.wait_for_job(train_id, timeout=300, poll_interval=1)
            out["train_status"] = sess.get_job_meta(train_id).get("status")
            samples_box = probe.samples
        rounds = read_rounds(record_file)
        alarms = log_alarms(system)
        out["rounds"] = rounds
        out["probe"] = samples_box
        out["alarms"] = alarms
        out["phases"] = {
            label: {**phase, "summary": summarize_phase(phase, rounds, samples_box, alarms, 2)}
            for label, phase in phases.items()
        }
    finally:
        system.stop()
        for folder in ("poc", "jobs-storage"):
            shutil.rmtree(vroot / folder, ignore_errors=True)  # free the disk
    return out


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def flood_line(flood: dict) -> str:
    """How the server answered the flood: served, refused at once (and how fast), anything else."""
    outcomes = flood["outcomes"]
    ok = outcomes.get("ok", {"n": 0})
    refused = {k: v for k, v in outcomes.items() if "range refused" in k}
    other = {k: v["n"] for k, v in outcomes.items() if k != "ok" and k not in refused}
    n_refused = sum(v["n"] for v in refused.values())
    medians = [v["median"] for v in refused.values() if v["median"] is not None]
    p90s = [v["p90"] for v in refused.values() if v["p90"] is not None]
    return (
        f"{flood['threads']} threads for {flood['seconds']:.0f} s: {ok['n']} ranges served "
        f"({flood['bytes'] / MB:.0f} MB, median {fmt(ok.get('median'), '.3f')} s), {n_refused} refused "
        f"(median {fmt(max(medians) if medians else None, '.3f')} s, p90 {fmt(max(p90s) if p90s else None, '.3f')} s)"
        + (f", other answers: {other}" if other else "")
    )


def print_table(result: dict):
    label = (
        " (admin processes at nice %d: a stand-in for a remote admin)" % result["admin_nice"]
        if result["admin_nice"]
        else " (admin processes on the same cores, normal priority)"
    )
    from nvflare.fuel.hci.server.download_settings import DEFAULT_RATE_LIMIT

    rate = result["rate_limit"] if result["rate_limit"] is not None else DEFAULT_RATE_LIMIT
    print(
        f"\n{result['model_mb']} MB model, 2 sites, {result['component_mb']} MB component, "
        f"{result['rounds_per_phase']} rounds per phase{label}; direct and ranges paced at "
        f"admin_download_rate_limit={rate:g} MB/s"
    )
    head = (
        f"{'variant':<16}{'phase':<13}{'rounds':>7}{'round s':>9}{'p95':>7}{'vs base':>9}{'task s':>8}{'p95':>7}"
        f"{'result s':>9}{'probe s':>9}{'max':>7}{'hb gap':>8}{'sites':>6}{'fail':>5}{'alarm':>6}"
        f"{'dl':>4}{'MB/s':>7}{'aggr':>7}  verdict"
    )
    print(head)
    print("-" * len(head))
    for vname, v in result["variants"].items():
        if "phases" not in v:
            print(f"{vname:<16}failed: {v.get('error')}")
            continue
        base = v["phases"]["no download"]["summary"]
        print(
            f"{vname:<16}{'alone':<13}{'':>7}{'':>9}{'':>7}{'':>9}{'':>8}{'':>7}{'':>9}{'':>9}{'':>7}{'':>8}"
            f"{'':>6}{'':>5}{'':>6}{len([r for r in v['alone'] if 'bytes' in r]):>4}{fmt(v['alone_mb_s'], '.0f'):>7}"
        )
        for label, phase in v["phases"].items():
            r = phase["summary"]
            change = None
            if r["round_s_median"] is not None and base["round_s_median"]:
                change = (r["round_s_median"] / base["round_s_median"] - 1) * 100
            print(
                f"{vname:<16}{label:<13}{r['rounds']:>7}{fmt(r['round_s_median']):>9}{fmt(r['round_s_p95']):>7}"
                f"{fmt(change, '+.0f') + ' %':>9}{fmt(r['task_latency_s_median']):>8}{fmt(r['task_latency_s_p95']):>7}"
                f"{fmt(r['result_latency_s_median']):>9}{fmt(r['probe_s_median']):>9}{fmt(r['probe_s_max']):>7}"
                f"{fmt(r['heartbeat_gap_s_max'], '.1f'):>8}{r['clients_seen_min']:>6}{len(r['failed_rounds']):>5}"
                f"{len(r['alarms']):>6}{r['downloads_ok']:>4}{fmt(r['download_mb_s_median'], '.0f'):>7}"
                f"{fmt(r['download_mb_s_aggregate'], '.0f'):>7}  {verdict(r, base, 2)}"
            )
    for vname, v in result["variants"].items():
        for label, phase in (v.get("phases") or {}).items():
            if phase.get("flood"):
                print(f">>> {vname} {label}: {flood_line(phase['flood'])}")
    for vname, v in result["variants"].items():
        if v.get("tls_ceiling_mb_s") and v.get("alone_mb_s"):
            fraction = v["alone_mb_s"] / v["tls_ceiling_mb_s"]
            print(
                f">>> {vname} alone: download_job_component {v['alone_mb_s']:.0f} MB/s / verified TLS ceiling "
                f"{v['tls_ceiling_mb_s']:.0f} MB/s = {fraction:.2f} (goal >= 0.9: {'met' if fraction >= 0.9 else 'NOT met'})"
            )
    print(
        "\nround s: schedule -> both results averaged; task s: scheduled -> site executor starts (incl. the "
        "site's poll); result s: site replies -> server has it; probe s: check_status latency; hb gap: largest "
        "gap between two heartbeats the server got from a site; sites: fewest sites check_status listed; fail: "
        "rounds without both results; alarm: log lines about dead/removed sites, timeouts, failed tasks; dl: "
        "verified downloads finished; MB/s: median per download; aggr: all downloads of the phase together."
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 MB model, 200 MB component, 4 rounds per phase")
    parser.add_argument("--model-mb", type=int)
    parser.add_argument("--component-mb", type=int)
    parser.add_argument("--rounds", type=int, help="rounds per phase (default 20; --quick 4)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--admin-nice", type=int, default=0, help="run the admin processes at this nice level")
    parser.add_argument(
        "--rate-limit",
        type=float,
        help="admin_download_rate_limit (MB/s) for the direct and ranges variants (default: the server's default)",
    )
    parser.add_argument("--task-timeout", type=float, default=120.0, help="the train task's timeout (s)")
    parser.add_argument("--warmup", type=int, default=2, help="rounds before the first phase")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between phases")
    parser.add_argument("--phase-max-seconds", type=float, default=1200.0)
    args = parser.parse_args()
    args.model_mb = args.model_mb or (8 if args.quick else 64)
    args.component_mb = args.component_mb or (200 if args.quick else 2000)
    args.rounds = args.rounds or (4 if args.quick else 20)

    import nvflare

    result = {
        "command": " ".join([os.path.relpath(sys.executable, REPO), *sys.argv]),
        "machine": machine(),
        "nvflare": nvflare.__version__,
        "model_mb": args.model_mb,
        "component_mb": args.component_mb,
        "rounds_per_phase": args.rounds,
        "admin_nice": args.admin_nice,
        "rate_limit": args.rate_limit,
        "target": f"no site dropped, no task failure, median round time at most +{TARGET_SLOWDOWN:.0%}",
        "variants": {},
    }
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="interference_bench_") as tmp:
        root = Path(tmp)
        write_model(root / "component.bin", args.component_mb * MB)
        for name in args.variants:
            print(f"variant {name} ...", flush=True)
            try:
                settings = dict(VARIANTS[name])
                if args.rate_limit is not None and name != "direct-unpaced":
                    settings["admin_download_rate_limit"] = args.rate_limit
                result["variants"][name] = run_variant(name, settings, args, root, root / "component.bin")
            except Exception as e:
                result["variants"][name] = {"error": f"{type(e).__name__}: {e}"}
                print(f"  [{name}] failed: {e}", flush=True)
    result["elapsed_s"] = time.time() - started
    print_table(result)
    write_result("interference_bench", result)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child_download(*sys.argv[2:8])
    else:
        main()
