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
"""The container-engine lane's fixtures: the engine, the fork's images built on it, and
one docker deployment (server parent and both sites as containers) shared by its tests.

Collected only in the lane (`bash tools/containers.sh`, which sets the engine up and
exports NVFLARE_FORK_ENGINE_*): elsewhere this folder holds no test, so the fast and the
system lanes never wait for an engine.
"""

import os
import shutil
import uuid
from pathlib import Path

import pytest

if not os.environ.get("NVFLARE_FORK_ENGINE_SOCKET"):
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def engine():
    from container_engine import Engine

    return Engine()


@pytest.fixture(scope="session")
def images(engine, upstream_wheel, tmp_path_factory):
    """The fork's images, built once per run (see container_images.build_all)."""
    from container_images import build_all

    return build_all(engine, upstream_wheel, tmp_path_factory.mktemp("image-contexts"))


@pytest.fixture(scope="session")
def deployment(engine, images):
    """Provisioned by the fork, prepared for docker, started by the kits' start_docker.sh."""
    from container_deployment import Deployment

    root = engine.state / "deployments" / f"run-{uuid.uuid4().hex[:8]}"
    d = Deployment(engine, root)
    try:
        d.prepare().start_all()
        yield d
    finally:
        d.teardown()
        # kept until the next run, for a look at the kits, parent logs and job stores
        last = engine.state / "deployments" / "last"
        shutil.rmtree(last, ignore_errors=True)
        root.rename(last)
        print(f"deployment kept in {last}")


@pytest.fixture(scope="session")
def main_runs(deployment, tmp_path_factory) -> dict:
    """Two PyTorch jobs submitted together (side by side, as on a real server): one in the
    fork's torch image with the BYOC key finder and key thief (tests/support/key_thief.py)
    on the server, one in the stock image."""
    from container_deployment import run_jobs
    from container_engine import PT_IMAGE, STOCK_PT_IMAGE
    from container_jobs import add_key_finder, pt_job
    from key_thief import add_thief
    from model_jobs import BEST, GLOBAL

    tmp = tmp_path_factory.mktemp("jobs")
    pt = add_thief(add_key_finder(pt_job(tmp, "pt_ctr", PT_IMAGE)))
    stock = pt_job(tmp, "pt_stock", STOCK_PT_IMAGE, has_fork=None, num_rounds=1)
    links = {GLOBAL: "FL_global_model.pt", BEST: "best_FL_global_model.pt"}
    return run_jobs(deployment, {"pt": (pt, links), "stock": (stock, {})})


@pytest.fixture(scope="session")
def pt_run(main_runs):
    return main_runs["pt"]


@pytest.fixture(scope="session")
def stock_run(main_runs):
    return main_runs["stock"]


@pytest.fixture(scope="session")
def tf_run(deployment, tmp_path_factory):
    """The hello-tf2 style job in the fork's TF image (alone: three TensorFlow processes start at once)."""
    from container_deployment import run_jobs
    from container_engine import TF_IMAGE
    from container_jobs import tf_job
    from model_jobs import GLOBAL

    job = tf_job(tmp_path_factory.mktemp("tf_job"), "tf_ctr", TF_IMAGE)
    return run_jobs(deployment, {"tf": (job, {GLOBAL: "tf_model.weights.h5"})})["tf"]
