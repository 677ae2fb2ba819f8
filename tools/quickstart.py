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
"""The fork's whole story on a real local FLARE system, step by step.

Run through tools/quickstart.sh (which makes the venv and installs the fork and torch).
Prepares and starts a POC system (server + 2 clients) in an isolated folder, runs a
PyTorch FedAvg job, then in the real admin console lists the job's components and
downloads just MODEL_global_model, loads it with torch, and compares with download_job.
The system is stopped on success, failure and Ctrl-C alike.
"""

import argparse
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "examples" / "quickstart"))

from admin_console import AdminConsole  # noqa: E402
from flare_system import PROJECT_ADMIN, FlareSystem  # noqa: E402

from nvflare.fuel.utils.file_digest import sha256_and_size  # noqa: E402

STEPS = 8


def step(n: int, text: str):
    print(f"\n[{n}/{STEPS}] {text}", flush=True)


def show(transcript: str, command: str):
    print(f"  > {command}")
    for line in transcript.splitlines():
        print(f"    {line}")


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def printed_path(output: str, pattern: str) -> Path:
    """The path the console printed where ``pattern`` (a regex with one group) says it did."""
    found = re.search(pattern, output)
    if not found or not os.path.exists(found.group(1)):
        raise RuntimeError(f"the console did not print where it downloaded to:\n{output}")
    return Path(found.group(1))


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(workdir: Path, keep: bool) -> int:
    import torch
    from make_job import export_job
    from net import QuickstartNet

    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    system = FlareSystem(workdir)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.time()
    try:
        step(1, f"preparing a local FLARE system (server + 2 clients, provisioned kits) in {workdir}")
        system.prepare()
        step(2, f"starting it (server port {system.port}; logs in {system.prod}/<participant>/poc_console.log)")
        system.start()
        print(f"  up in {time.time() - started:.0f} s")

        step(3, "exporting and submitting a PyTorch FedAvg job (Client API, 2 sites, 3 rounds, 53 MB model)")
        job_dir = export_job(str(workdir / "jobs"))
        with system.session() as sess:
            job_id = sess.submit_job(job_dir)
            print(f"  job id: {job_id}")
            step(4, "waiting for the job to finish")
            t = time.time()
            meta = sess.wait_for_job(job_id, timeout=900, poll_interval=2.0)
            status = sess.get_job_meta(job_id).get("status")
            print(f"  status {status} after {time.time() - t:.0f} s")
            if status != "FINISHED:COMPLETED":
                raise RuntimeError(f"job ended as {status}: {meta}")

        with AdminConsole(system.kit(PROJECT_ADMIN), env=system.env) as console:
            step(5, "in the admin console: what did the job store keep?")
            show(console.run(f"list_job {job_id}"), f"list_job {job_id}")
            show(console.run(f"list_job_component_info {job_id}"), f"list_job_component_info {job_id}")

            step(6, "in the admin console: download just the final global model")
            command = f"download_job_component {job_id} MODEL_global_model"
            t = time.time()
            out = console.run(command, timeout=600)
            model_seconds = time.time() - t
            show(out, command)
            model_path = printed_path(out, r"downloaded MODEL_global_model of job \S+ to (\S+) \(")

            step(7, "loading it with torch")
            state = torch.load(model_path, weights_only=True, map_location="cpu")
            size = model_path.stat().st_size
            print(f"  path:    {model_path}")
            print(f"  size:    {size:,} bytes")
            print(f"  sha256:  {sha256_and_size(model_path)[0]}")
            weights = state.get("model", state)  # PTFileModelPersistor saves {"model": state_dict, ...}
            net = QuickstartNet()
            net.load_state_dict(weights)
            print(
                f"  loaded:  QuickstartNet, {len(weights)} tensors, {sum(v.numel() for v in weights.values()):,} parameters"
            )
            print(f"  took:    {model_seconds:.2f} s")

            step(8, "for comparison, upstream's download_job of the same job")
            t = time.time()
            out = console.run(f"download_job {job_id}", timeout=900)
            job_seconds = time.time() - t
            show(out, f"download_job {job_id}")
            job_folder = printed_path(out, r"content downloaded to (\S+)")
            job_bytes = folder_bytes(job_folder)

        print("\n  what                          seconds        bytes")
        print(f"  download_job_component  {model_seconds:>12.2f} {size:>12,}")
        print(f"  download_job            {job_seconds:>12.2f} {job_bytes:>12,}")
        print(f"\nDone in {time.time() - started:.0f} s. The model is at {model_path}")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the FLARE system", file=sys.stderr)
        return 130
    except Exception as e:
        print(f"\nquickstart failed: {e}", file=sys.stderr)
        print(f"last server log lines:\n{system.tail_console()}", file=sys.stderr)
        return 1
    finally:
        if keep:
            print(
                f"\n--keep: the system is still running in {workdir}; stop it with "
                f"HOME={system.home} NVFLARE_POC_WORKSPACE={system.workspace} nvflare poc stop"
            )
        else:
            print("\nstopping the FLARE system ...", flush=True)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave processes behind
            system.stop()
            left = system.workspace_processes()
            print("stopped; no FLARE processes left" if not left else f"WARNING: still running: {left}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=str(ROOT / ".work" / "quickstart"), help="where the system and downloads live")
    parser.add_argument("--keep", action="store_true", help="leave the system running at the end")
    args = parser.parse_args(argv)
    return run(Path(args.dir).resolve(), args.keep)


if __name__ == "__main__":
    sys.exit(main())
