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
"""Jobs whose every process runs in a job container of the real engine.

Test code. The same recipes as tests/support/model_jobs.py, with what a container needs:
the training script runs with the image's ``python3`` (not this venv's interpreter), every
site's job runs from the job image named in ``launcher_spec["default"]["docker"]``, and
the job says whether that image has the fork (``model_publish_job_image_has_fork``; left
out for a stock image, so the server's documented default applies).

``KeyFinder`` is a BYOC server component: in its job's server process (its own
container) it lists what the process can read that a forger would want - every file
under the workspace mount, every readable PEM file of the container, key material in its
environment - its uid/gid and its mounts, into ``key_finder.json`` of its run folder
(the workspace archive brings it back), and leaves in that folder a symlink to the
parent's model-signing key (``signing_key_link.pem``), which the parent must not follow
when it archives the folder.
"""

import json
import sys
import textwrap
from pathlib import Path

from model_jobs import pt_fedavg_job, tf_fedavg_job

CONTAINER_PYTHON = "python3 -u"
KEY_FINDER_REPORT = "key_finder.json"

KEY_FINDER = textwrap.dedent(
    '''
    """BYOC: what this job's server process can read that would let it sign as the server."""
    import json
    import os

    from nvflare.apis.event_type import EventType
    from nvflare.apis.fl_component import FLComponent

    WORKSPACE = "/var/tmp/nvflare/workspace"
    SKIP = ("/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/boot")


    def _readable(path):
        try:
            with open(path, "rb") as f:
                return f.read(1 << 20)
        except OSError:
            return None


    class KeyFinder(FLComponent):
        def handle_event(self, event_type, fl_ctx):
            if event_type != EventType.START_RUN:
                return
            report = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}
            report["workspace_files"] = sorted(
                os.path.relpath(os.path.join(d, f), WORKSPACE)
                for d, _, files in os.walk(WORKSPACE)
                for f in files
                if _readable(os.path.join(d, f)) is not None
            )
            run_dir = fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id())
            stolen = os.path.join(run_dir, "stolen") + os.sep  # the key thief's copies, if it ran first
            pem = {}
            for top in sorted(set(os.listdir("/")) - {s.strip("/") for s in SKIP}):
                for d, dirs, files in os.walk("/" + top):
                    dirs[:] = [x for x in dirs if os.path.join(d, x) not in SKIP]
                    for f in files:
                        path = os.path.join(d, f)
                        if path.startswith(stolen):
                            continue
                        data = _readable(path) if os.path.isfile(path) else None
                        if data and b"-----BEGIN " in data:
                            pem[path] = sorted({line.decode(errors="replace") for line in data.split(b"\\n")
                                                if line.startswith(b"-----BEGIN ")})
            report["pem_files"] = pem
            report["private_keys"] = sorted(p for p, kinds in pem.items() if any("PRIVATE KEY" in k for k in kinds))
            report["env_with_key_material"] = sorted(k for k, v in os.environ.items() if "PRIVATE KEY" in v)
            report["docker_socket"] = os.path.exists("/var/run/docker.sock")
            with open("/proc/self/mountinfo") as f:
                report["mounts"] = sorted({line.split()[4] for line in f})
            with open(os.path.join(run_dir, "key_finder.json"), "w") as f:
                json.dump(report, f, indent=1)
            # a link to where the parent keeps its model-signing key: archived as a link, never its target
            os.symlink(WORKSPACE + "/signing/model_signing.key", os.path.join(run_dir, "signing_key_link.pem"))
            self.log_info(fl_ctx, f"key finder: {len(report['private_keys'])} private key file(s) readable")
    '''
)


def in_image(job: Path, image: str, has_fork=None) -> Path:
    """Every site's job process from ``image``; the job's word on the fork if given."""
    meta_file = job / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["launcher_spec"] = {"default": {"docker": {"image": image}}}
    if has_fork is not None:
        meta["model_publish_job_image_has_fork"] = has_fork
    meta_file.write_text(json.dumps(meta, indent=2))
    return job


def add_key_finder(job: Path) -> Path:
    app = job / "app"
    (app / "custom" / "key_finder.py").write_text(KEY_FINDER)
    config_file = app / "config" / "config_fed_server.json"
    config = json.loads(config_file.read_text())
    config["components"].append({"id": "key_finder", "path": "key_finder.KeyFinder", "args": {}})
    config_file.write_text(json.dumps(config, indent=2))
    return job


def pt_job(root: Path, name: str, image: str, has_fork=True, num_rounds: int = 2) -> Path:
    """The PyTorch FedAvg job of model_jobs (PTFileModelPersistor, IntimeModelSelector) in ``image``."""
    return in_image(pt_fedavg_job(Path(root), name, num_rounds, command=CONTAINER_PYTHON), image, has_fork)


def tf_job(root: Path, name: str, image: str, num_rounds: int = 2) -> Path:
    """The hello-tf2 style job of model_jobs (TF FedAvgRecipe, TFModelPersistor) in ``image``."""
    job = tf_fedavg_job(Path(root), Path("/tmp"), name=name, num_rounds=num_rounds, command=CONTAINER_PYTHON)
    return in_image(job, image, True)


def no_host_interpreter(job: Path):
    """The exported configs name no interpreter of this venv (it does not exist in the images)."""
    for f in job.rglob("*.json"):
        assert sys.executable not in f.read_text(), f
