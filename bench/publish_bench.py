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

    .venv-test/bin/python bench/publish_bench.py [--size-mb 500] [--runs 3]

Starts two real POC systems in a temp folder (the default, and one with
model_publish_transfer=stream), runs on each a job whose server writes a model file of the
given size and lists it in its persistor's inventory, and reads the publish time the job
process logs ("Published ... (local|stream, N.NNs)": request to stored, sha256 included).
`cp` copies the same-size file on the same disk. Prints a table; writes JSON to
bench/results/. Target: same-host path <= 2x cp.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))

from flare_system import FlareSystem  # noqa: E402

COMPONENTS = '''
import os

from nvflare.apis.impl.controller import Controller
from nvflare.app_common.abstract.model import ModelLearnable
from nvflare.app_common.abstract.model_persistor import ModelPersistor
from nvflare.app_common.model_desc import ModelDescriptor

SIZE_MB = {size_mb}


def model_path(fl_ctx):
    engine = fl_ctx.get_engine()
    return os.path.join(engine.get_workspace().get_app_dir(fl_ctx.get_job_id()), "FL_global_model.pt")


class WriteBigModel(Controller):
    """Writes a SIZE_MB model file, as a persistor would after the last round."""

    def start_controller(self, fl_ctx):
        pass

    def stop_controller(self, fl_ctx):
        pass

    def process_result_of_unknown_task(self, client, task_name, client_task_id, result, fl_ctx):
        pass

    def control_flow(self, abort_signal, fl_ctx):
        block = os.urandom(1 << 20)
        with open(model_path(fl_ctx), "wb") as f:
            for _ in range(SIZE_MB):
                f.write(block)


class BigModelPersistor(ModelPersistor):
    def load_model(self, fl_ctx):
        return ModelLearnable()

    def save_model(self, model, fl_ctx):
        pass

    def get_model_inventory(self, fl_ctx):
        path = model_path(fl_ctx)
        return {{"FL_global_model.pt": ModelDescriptor("FL_global_model.pt", path, "bytes", {{}})}}
'''


def write_job(root: Path, size_mb: int) -> Path:
    job = root / "big_model_job"
    (job / "app" / "config").mkdir(parents=True, exist_ok=True)
    (job / "app" / "custom").mkdir(parents=True, exist_ok=True)
    (job / "app" / "custom" / "bench_components.py").write_text(COMPONENTS.format(size_mb=size_mb))
    (job / "meta.json").write_text(
        json.dumps({"name": "big_model_job", "resource_spec": {}, "deploy_map": {"app": ["@ALL"]}, "min_clients": 1})
    )
    server = {
        "format_version": 2,
        "workflows": [{"id": "controller", "path": "bench_components.WriteBigModel", "args": {}}],
        "components": [{"id": "persistor", "path": "bench_components.BigModelPersistor", "args": {}}],
    }
    # clients get no task; they only need a valid app
    client = {
        "format_version": 2,
        "executors": [{"tasks": ["train"], "executor": {"path": "nvflare.app_common.np.np_trainer.NPTrainer"}}],
        "components": [],
    }
    (job / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server, indent=2))
    (job / "app" / "config" / "config_fed_client.json").write_text(json.dumps(client, indent=2))
    return job


def publish_times(system: FlareSystem, job: Path, runs: int) -> list:
    times = []
    for _ in range(runs):
        job_id, meta = system.submit_and_wait(job, timeout=600)
        if meta.get("status") != "FINISHED:COMPLETED":
            raise RuntimeError(f"bench job {job_id} ended {meta.get('status')}\n{system.tail_console()}")
        log = system.console_log.read_text(errors="replace")
        found = re.findall(rf"Published global model 'FL_global_model.pt' of job {job_id} as \S+ \((\w+), ([\d.]+)s\)", log)
        if not found:
            raise RuntimeError(f"no publish line for job {job_id}\n{system.tail_console()}")
        times.append((found[-1][0], float(found[-1][1])))
    return times


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


def run_system(root: Path, job: Path, runs: int, settings: dict) -> list:
    system = FlareSystem(root)
    try:
        system.prepare()
        if settings:
            resources_file = system.server_dir / "local" / "resources.json"
            resources = json.loads(resources_file.read_text())
            resources.update(settings)
            resources_file.write_text(json.dumps(resources, indent=2))
        system.start()
        return publish_times(system, job, runs)
    finally:
        system.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="publish_bench_") as tmp:
        root = Path(tmp)
        job = write_job(root, args.size_mb)
        local = run_system(root / "local", job, args.runs, {})
        stream = run_system(root / "stream", job, args.runs, {"model_publish_transfer": "stream"})
        cp = cp_times(root, args.size_mb, args.runs)

    rows = [
        ("same-host (" + ",".join(sorted({m for m, _ in local})) + ")", [t for _, t in local]),
        ("streaming", [t for _, t in stream]),
        ("cp", cp),
    ]
    cp_median = statistics.median(cp)
    print(f"\nPublishing a {args.size_mb} MB model at job end ({args.runs} runs each, seconds)\n")
    print(f"{'path':<22}{'median':>10}{'min':>10}{'max':>10}{'x cp':>8}")
    result = {"size_mb": args.size_mb, "runs": args.runs, "paths": {}}
    for name, times in rows:
        median = statistics.median(times)
        print(f"{name:<22}{median:>10.3f}{min(times):>10.3f}{max(times):>10.3f}{median / cp_median:>8.2f}")
        result["paths"][name] = {"median": median, "min": min(times), "max": max(times), "times": times}
    same_host_ratio = statistics.median(rows[0][1]) / cp_median
    result["same_host_vs_cp"] = same_host_ratio
    result["target_met"] = same_host_ratio <= 2.0
    print(f"\nsame-host / cp = {same_host_ratio:.2f} (target <= 2.0: {'met' if result['target_met'] else 'NOT met'})")
    out = REPO / "bench" / "results" / f"publish_bench_{time.strftime('%Y%m%d_%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
