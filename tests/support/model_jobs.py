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
"""Tiny real jobs for the model-publishing tests, written with nvflare's own recipe API.

Kept small (a 4->2 linear model, a few rounds, synthetic data) so a job takes seconds on
two cores; what matters is that they are ordinary jobs: nothing in them mentions publishing
unless a test asks for it.
"""

import contextlib
import json
import os
import sys
import textwrap
import time
import zipfile
from pathlib import Path

from job_custom import write_custom

PT_TRAIN_SCRIPT = textwrap.dedent(
    """
    # Client API training script, run in its own process (launch_external_process=True).
    import torch
    import nvflare.client as flare

    flare.init()
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    while flare.is_running():
        received = flare.receive()
        model = torch.nn.Linear(4, 2)
        model.load_state_dict({k: torch.as_tensor(v) for k, v in received.params.items()})
        with torch.no_grad():
            accuracy = float((model(x).argmax(1) == y).float().mean())
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        flare.send(flare.FLModel(params=model.state_dict(), metrics={"accuracy": accuracy}))
    """
)

NP_TRAIN_SCRIPT = textwrap.dedent(
    """
    # Client API script (in process): adds 1 to every weight each round.
    import nvflare.client as flare

    flare.init()
    while flare.is_running():
        received = flare.receive()
        params = {k: v + 1 for k, v in received.params.items()}
        flare.send(flare.FLModel(params=params, metrics={"accuracy": 0.5}))
    """
)


@contextlib.contextmanager
def _script(folder: Path, text: str):
    """Write train.py and work from its folder: recipes copy a script by its relative path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(text)
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield "train.py"
    finally:
        os.chdir(before)


def pt_fedavg_job(root: Path, name: str = "pt_publish", num_rounds: int = 2, command: str = None) -> Path:
    """A PyTorch FedAvg job: Client API in an external process, IntimeModelSelector on accuracy.

    ``command`` runs the training script (default: this venv's interpreter)."""
    from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe

    root = Path(root).resolve()
    with _script(root / f"{name}_src", PT_TRAIN_SCRIPT) as script:
        recipe = FedAvgRecipe(
            name=name,
            model={"path": "torch.nn.Linear", "args": {"in_features": 4, "out_features": 2}},
            min_clients=2,
            num_rounds=num_rounds,
            train_script=script,
            launch_external_process=True,
            command=command or f"{sys.executable} -u",
            key_metric="accuracy",
        )
        recipe.export(str(root))
    return root / name


def np_fedavg_job(
    root: Path, name: str = "np_publish", num_rounds: int = 2, script_text: str = NP_TRAIN_SCRIPT
) -> Path:
    """A numpy FedAvg job: NPModelPersistor, which has no model inventory."""
    from nvflare.app_common.np.recipes.fedavg import NumpyFedAvgRecipe

    root = Path(root).resolve()
    with _script(root / f"{name}_src", script_text) as script:
        recipe = NumpyFedAvgRecipe(
            name=name, model=[[1.0, 2.0], [3.0, 4.0]], min_clients=2, num_rounds=num_rounds, train_script=script
        )
        recipe.export(str(root))
    return root / name


# The metric the clients report for the global model they received, by round: the model
# selector's best is the round-1 model, which is neither the initial nor the final one.
METRIC_SCHEDULE = [0.5, 0.9, 0.7]

TF_MODEL_MODULE = textwrap.dedent(
    """
    # The server's Keras model (hello-tf2 keeps it in model.py); layer names are what
    # FLARE's parameter names are made of: dense_nvf_0, dense_nvf_1, dense_1_nvf_0, ...
    import keras


    class TinyNet(keras.Sequential):
        def __init__(self):
            super().__init__(
                [keras.Input(shape=(4,)), keras.layers.Dense(3, name="dense"), keras.layers.Dense(2, name="dense_1")]
            )
    """
)

TF_TRAIN_SCRIPT = textwrap.dedent(
    """
    # hello-tf2 style Client API script, run in its own process: Keras fit on synthetic data.
    # It also saves the weights it received each round (--out) so a test can tell which
    # global model the metric it reports belongs to.
    import argparse
    import os

    import keras
    import numpy as np

    import nvflare.client as flare

    SCHEDULE = %r

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    out = parser.parse_args().out

    flare.init()
    site = flare.get_site_name()
    model = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Dense(3, name="dense"), keras.layers.Dense(2, name="dense_1")]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(1 if site == "site-1" else 2)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    while flare.is_running():
        received = flare.receive()
        r = received.current_round
        for name, weights in received.params.items():
            model.get_layer(name).set_weights(weights)
        np.savez(
            os.path.join(out, f"received_{site}_{r}.npz"),
            **{f"{n}_nvf_{i}": w for n, ws in received.params.items() for i, w in enumerate(ws)},
        )
        model.fit(x, y, epochs=1, batch_size=32, verbose=0, shuffle=False)
        params = {layer.name: layer.get_weights() for layer in model.layers}
        flare.send(flare.FLModel(params=params, metrics={"accuracy": SCHEDULE[r]}))
    """
    % (METRIC_SCHEDULE,)
)

NP_SCHEDULE_SCRIPT = textwrap.dedent(
    """
    # Client API script (in process): adds 1 to every weight each round; reports the
    # scheduled metric for the model it received.
    import nvflare.client as flare

    SCHEDULE = %r

    flare.init()
    while flare.is_running():
        received = flare.receive()
        params = {k: v + 1 for k, v in received.params.items()}
        flare.send(flare.FLModel(params=params, metrics={"accuracy": SCHEDULE[received.current_round]}))
    """
    % (METRIC_SCHEDULE,)
)


def tf_fedavg_job(
    root: Path, out_dir: Path, name: str = "tf_publish", num_rounds: int = 3, command: str = None
) -> Path:
    """A hello-tf2 style job: TF FedAvgRecipe, TFModelPersistor, 2 sites, external-process Client API.

    Imports TensorFlow in this process (the recipe needs the model object). ``command`` runs
    the training script (default: this venv's interpreter).
    """
    import importlib

    from nvflare.app_opt.tf.recipes.fedavg import FedAvgRecipe

    root = Path(root).resolve()
    src = root / f"{name}_src"
    with _script(src, TF_TRAIN_SCRIPT) as script:
        (src / "tiny_keras.py").write_text(TF_MODEL_MODULE)
        sys.path.insert(0, str(src))
        try:
            tiny_keras = importlib.import_module("tiny_keras")
            recipe = FedAvgRecipe(
                name=name,
                model=tiny_keras.TinyNet(),
                min_clients=2,
                num_rounds=num_rounds,
                train_script=script,
                train_args=f"--out {out_dir}",
                launch_external_process=True,
                command=command or f"{sys.executable} -u",
                key_metric="accuracy",
            )
            recipe.export(str(root))
        finally:
            sys.path.remove(str(src))
    return root / name


FILE_MODEL_COMPONENTS = textwrap.dedent(
    '''
    # Server side of a job whose "training" writes one model file, as a persistor would.
    import hashlib
    import os
    import time

    from control_flow_only import ControlFlowOnly
    from nvflare.app_common.abstract.model import ModelLearnable
    from nvflare.app_common.abstract.model_persistor import ModelPersistor
    from nvflare.app_common.app_event_type import AppEventType
    from nvflare.app_common.model_desc import ModelDescriptor


    def model_path(fl_ctx):
        engine = fl_ctx.get_engine()
        return os.path.join(engine.get_workspace().get_app_dir(fl_ctx.get_job_id()), "FL_global_model.pt")


    def sha256_of(path):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


    class WriteModel(ControlFlowOnly):
        """Writes a size_mb model file and fires AFTER_LEARNABLE_PERSIST persist_events times,
        "training" train_seconds after each; rewrite: then changes the file in place, keeping its
        size and restoring its mtime (what a careless persistor or a user script might do).
        log_sha256: log the file's sha256 after writing and rewriting (for tests)."""

        def __init__(self, size_mb=4, persist_events=1, train_seconds=2.0, rewrite=False, log_sha256=True):
            super().__init__()
            self.size_mb, self.persist_events = size_mb, persist_events
            self.train_seconds, self.rewrite, self.log_sha256 = train_seconds, rewrite, log_sha256

        def control_flow(self, abort_signal, fl_ctx):
            path = model_path(fl_ctx)
            block = os.urandom(1 << 20)
            with open(path, "wb") as f:
                for _ in range(self.size_mb):
                    f.write(block)
            if self.log_sha256:
                self.log_info(fl_ctx, f"TEST wrote {path} with sha256 {sha256_of(path)}")
            for _ in range(self.persist_events):
                self.fire_event(AppEventType.AFTER_LEARNABLE_PERSIST, fl_ctx)
                time.sleep(self.train_seconds)
            if self.rewrite:
                before = os.stat(path)
                with open(path, "r+b") as f:
                    f.write(os.urandom(1 << 20))
                os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
                after = os.stat(path)
                self.log_info(
                    fl_ctx,
                    f"TEST rewrote {path} in place: same size {after.st_size == before.st_size}, "
                    f"same mtime {after.st_mtime_ns == before.st_mtime_ns}, "
                    f"same ctime {after.st_ctime_ns == before.st_ctime_ns}"
                    + (f", sha256 {sha256_of(path)}" if self.log_sha256 else ""),
                )


    class FileModelPersistor(ModelPersistor):
        def load_model(self, fl_ctx):
            return ModelLearnable()

        def save_model(self, model, fl_ctx):
            pass

        def get_model_inventory(self, fl_ctx):
            path = model_path(fl_ctx)
            return {"FL_global_model.pt": ModelDescriptor("FL_global_model.pt", path, "bytes", {})}
    '''
)


def file_model_job(root: Path, name: str = "file_model", **controller_args) -> Path:
    """A job whose server writes one model file (WriteModel args) and lists it in its persistor's inventory."""
    job = Path(root).resolve() / name
    (job / "app" / "config").mkdir(parents=True, exist_ok=True)
    write_custom(job, "file_model_components", FILE_MODEL_COMPONENTS)
    meta = {"name": name, "resource_spec": {}, "deploy_map": {"app": ["@ALL"]}, "min_clients": 1}
    (job / "meta.json").write_text(json.dumps(meta))
    server = {
        "format_version": 2,
        "workflows": [{"id": "controller", "path": "file_model_components.WriteModel", "args": controller_args}],
        "components": [{"id": "persistor", "path": "file_model_components.FileModelPersistor", "args": {}}],
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


def server_config_path(job_folder: Path) -> Path:
    found = sorted(Path(job_folder).glob("*/config/config_fed_server.json"))
    if len(found) != 1:
        raise RuntimeError(f"expected one server config in {job_folder}, found {found}")
    return found[0]


def add_server_component(job_folder: Path, component: dict) -> None:
    """Configure a component in the job's server config (as a user editing the JSON would)."""
    path = server_config_path(job_folder)
    config = json.loads(path.read_text())
    config.setdefault("components", []).append(component)
    path.write_text(json.dumps(config, indent=2))


# -- running them and looking at the result -------------------------------------------
GLOBAL = "MODEL_global_model"
BEST = "MODEL_best_global_model"
PUBLISHER = "nvflare.app_common.widgets.model_publisher.ModelPublisher"


def run_and_catch_finish(system, job_folder, timeout=300.0):
    """Submit a job; list its components the moment its status first reads FINISHED:*."""
    with system.session() as sess:
        job_id = sess.submit_job(str(job_folder))
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = sess.get_job_meta(job_id).get("status", "")
            if status.startswith("FINISHED"):
                return job_id, status, sess.list_job_components(job_id)
            time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s\n{system.tail_console()}")


def workspace_files(system, job_id) -> dict:
    """{archive member name: bytes} of the job's stored workspace archive."""
    with zipfile.ZipFile(system.job_store_dir(job_id) / "workspace") as z:
        return {n: z.read(n) for n in z.namelist() if not n.endswith("/")}


def member(files: dict, suffix: str) -> bytes:
    found = [n for n in files if n.endswith(suffix)]
    assert len(found) == 1, f"expected one {suffix} in the workspace archive, found {found}"
    return files[found[0]]


def job_meta(system, job_id) -> dict:
    return json.loads((system.job_store_dir(job_id) / "meta").read_text())
