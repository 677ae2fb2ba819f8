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
"""A Keras, a PyTorch and a numpy user each load the final and best model as downloaded.

Real jobs on the shared local system: a hello-tf2 style TensorFlow job (TF FedAvgRecipe,
TFModelPersistor, 2 sites, Client API in external processes, IntimeModelSelector on
accuracy), a numpy FedAvg job and a PyTorch FedAvg job. Both models of each are fetched
through the real admin console, loaded with the lines docs/model-publishing.md gives
(read from the docs and run as written), and compared with what the server persisted or
the clients received in the round that made the model best. The clients report a fixed
metric schedule (model_jobs.METRIC_SCHEDULE), so the best model is the round-1 model:
neither the initial nor the final one.
"""

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from admin_console import AdminConsole
from model_jobs import BEST, GLOBAL, NP_SCHEDULE_SCRIPT, job_meta, member, np_fedavg_job, pt_fedavg_job, tf_fedavg_job

DOCS = Path(__file__).resolve().parents[2] / "docs" / "model-publishing.md"
BEST_ROUND = 1  # METRIC_SCHEDULE's maximum


def documented_snippets() -> dict:
    """{name: code} of the ``<!-- loads: name -->`` python blocks in docs/model-publishing.md."""
    text = DOCS.read_text()
    return dict(re.findall(r"<!-- loads: (\S+) -->\n```python\n(.*?)```", text, re.S))


def run_documented(name: str, **namespace) -> dict:
    exec(compile(documented_snippets()[name], f"docs/model-publishing.md:{name}", "exec"), namespace)
    return namespace


def downloaded_path(output: str) -> str:
    m = re.search(r"^downloaded \S+ of job \S+ to (\S+) \(\d+ bytes in .*sha256 verified\)$", output, re.M)
    assert m, output
    return m.group(1)


def table_rows(output: str) -> dict:
    lines = [[c.strip() for c in line.strip("|").split("|")] for line in output.splitlines() if line.startswith("|")]
    header = lines[0]
    return {row[0]: dict(zip(header, row)) for row in lines[1:]}


def fetch_both(system, job_id, dest) -> tuple:
    """Download final and best model through the real console; (paths, table rows, api rows)."""
    with AdminConsole(system.kit(), env=system.env) as c:
        paths = {
            comp: downloaded_path(c.run(f"download_job_component {job_id} {comp} {dest}")) for comp in (GLOBAL, BEST)
        }
        table = table_rows(c.run(f"list_job_component_info {job_id}"))
    with system.session() as sess:
        api = {r["name"]: r for r in sess.list_job_component_info(job_id)}
    return paths, table, api


def check_listing_agrees(table: dict, api: dict, records: dict):
    """Console table, API rows and the stored records say the same about both models."""
    for comp in (GLOBAL, BEST):
        row, rec, cells = api[comp], records[comp], table[comp]
        for key in ("sha256", "size", "file_name", "format", "round"):
            assert row[key] == rec[key], (comp, key)
        assert [cells["FILE NAME"], cells["FORMAT"], cells["SIZE"], cells["ROUND"], cells["SHA256"]] == [
            rec["file_name"],
            rec["format"],
            str(rec["size"]),
            str(rec["round"]),
            rec["sha256"],
        ]
    best = api[BEST]
    assert (best["metric_name"], best["metric_mode"]) == ("accuracy", "max")
    assert table[BEST]["BEST BY"] == f"accuracy={best['metric_value']:.6g} (max)"
    assert table[GLOBAL]["BEST BY"] == "-" and "metric_value" not in api[GLOBAL]


def workspace_member(system, job_id, suffix) -> bytes:
    with zipfile.ZipFile(system.job_store_dir(job_id) / "workspace") as z:
        names = [n for n in z.namelist() if n.endswith(suffix)]
        assert len(names) == 1, (suffix, z.namelist())
        assert not [n for n in z.namelist() if ".model_publish" in n]  # the kept best copy is not archived
        return z.read(names[0])


# -- Keras --------------------------------------------------------------------------
def tiny_keras():
    import keras

    return keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Dense(3, name="dense"), keras.layers.Dense(2, name="dense_1")]
    )


@pytest.fixture(scope="module")
def tf_job(flare_system, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tf_job")
    received = tmp / "received"
    received.mkdir()
    job_id, meta = flare_system.submit_and_wait(tf_fedavg_job(tmp, received), timeout=600)
    assert meta["status"] == "FINISHED:COMPLETED", f"{meta}\n{flare_system.tail_console()}"
    return job_id, received, fetch_both(flare_system, job_id, tmp / "downloads")


@pytest.mark.system
def test_keras_user_loads_final_and_best_model_as_downloaded(flare_system, tf_job, tmp_path):
    job_id, received, (paths, table, api) = tf_job
    assert paths[GLOBAL].endswith("/MODEL_global_model.weights.h5")
    assert paths[BEST].endswith("/MODEL_best_global_model.weights.h5")

    final = run_documented("keras-weights", model=tiny_keras(), path=paths[GLOBAL])["model"]
    best = run_documented("keras-weights", model=tiny_keras(), path=paths[BEST])["model"]

    # the final model is the server's persisted tf_model.weights.h5, byte for byte and loaded
    persisted_bytes = workspace_member(flare_system, job_id, "app_server/tf_model.weights.h5")
    assert Path(paths[GLOBAL]).read_bytes() == persisted_bytes
    persisted_file = tmp_path / "persisted.weights.h5"
    persisted_file.write_bytes(persisted_bytes)
    persisted = tiny_keras()
    persisted.load_weights(str(persisted_file))
    for a, b in zip(final.get_weights(), persisted.get_weights()):
        np.testing.assert_array_equal(a, b)

    # the best model is the global model both sites received (and measured) in round 1
    for site in ("site-1", "site-2"):
        with np.load(received / f"received_{site}_{BEST_ROUND}.npz") as sent:
            for layer in best.layers:
                for i, w in enumerate(layer.get_weights()):
                    np.testing.assert_array_equal(w, sent[f"{layer.name}_nvf_{i}"])
    assert any(not np.array_equal(a, b) for a, b in zip(best.get_weights(), final.get_weights()))

    records = job_meta(flare_system, job_id)["component_records"]
    assert (records[GLOBAL]["file_name"], records[GLOBAL]["format"], records[GLOBAL]["round"]) == (
        "tf_model.weights.h5",
        "TensorFlow",
        2,
    )
    best_rec = records[BEST]
    assert (best_rec["file_name"], best_rec["format"], best_rec["round"]) == (
        "best_global_model.weights.h5",
        "TensorFlow",
        BEST_ROUND,
    )
    assert (best_rec["metric_name"], best_rec["metric_value"], best_rec["metric_mode"]) == ("accuracy", 0.9, "max")
    assert best_rec["hashed"] == "job"  # hashed in the background while the job trained
    check_listing_agrees(table, api, records)
    log = flare_system.console_log.read_text(errors="replace")
    assert f"Kept the best global model of round {BEST_ROUND} as best_global_model.weights.h5 (TensorFlow, " in log


# -- numpy --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def np_job(flare_system, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("np_job")
    job = np_fedavg_job(tmp, name="np_models", num_rounds=3, script_text=NP_SCHEDULE_SCRIPT)
    job_id, meta = flare_system.submit_and_wait(job)
    assert meta["status"] == "FINISHED:COMPLETED", f"{meta}\n{flare_system.tail_console()}"
    return job_id, fetch_both(flare_system, job_id, tmp / "downloads")


@pytest.mark.system
def test_numpy_user_loads_final_and_best_model_as_downloaded(flare_system, np_job):
    job_id, (paths, table, api) = np_job
    assert paths[GLOBAL].endswith("/MODEL_global_model.npz")
    assert paths[BEST].endswith("/MODEL_best_global_model.npy")
    final = run_documented("numpy-npz", path=paths[GLOBAL])["weights"]
    best = run_documented("numpy-npy", path=paths[BEST])["weights"]
    persisted = np.load(io.BytesIO(workspace_member(flare_system, job_id, "models/server.npy")))
    np.testing.assert_array_equal(final, persisted)
    np.testing.assert_array_equal(final, [[4.0, 5.0], [6.0, 7.0]])  # [[1, 2], [3, 4]] + 3 rounds
    np.testing.assert_array_equal(best, [[2.0, 3.0], [4.0, 5.0]])  # what the clients received in round 1

    records = job_meta(flare_system, job_id)["component_records"]
    assert (records[GLOBAL]["format"], records[GLOBAL]["round"]) == ("numpy_npz", 2)
    best_rec = records[BEST]
    assert (best_rec["file_name"], best_rec["format"], best_rec["round"]) == (
        "best_global_model.npy",
        "numpy_npy",
        BEST_ROUND,
    )
    assert (best_rec["metric_name"], best_rec["metric_value"]) == ("accuracy", 0.9)
    check_listing_agrees(table, api, records)


# -- PyTorch ------------------------------------------------------------------------
@pytest.mark.system
def test_pytorch_user_loads_final_and_best_model_as_downloaded(flare_system, tmp_path):
    import torch

    job_id, meta = flare_system.submit_and_wait(pt_fedavg_job(tmp_path, name="pt_models"))
    assert meta["status"] == "FINISHED:COMPLETED", meta
    paths, table, api = fetch_both(flare_system, job_id, tmp_path / "downloads")
    assert paths[GLOBAL].endswith("/MODEL_global_model.pt") and paths[BEST].endswith("/MODEL_best_global_model.pt")
    files = {
        name: torch.load(io.BytesIO(workspace_member(flare_system, job_id, f"app_server/{name}")), weights_only=True)
        for name in ("FL_global_model.pt", "best_FL_global_model.pt")
    }
    for comp, name in ((GLOBAL, "FL_global_model.pt"), (BEST, "best_FL_global_model.pt")):
        model = run_documented("pytorch", model=torch.nn.Linear(4, 2), path=paths[comp])["model"]
        for k, v in model.state_dict().items():
            assert torch.equal(v, files[name]["model"][k]), (comp, k)

    records = job_meta(flare_system, job_id)["component_records"]
    assert records[GLOBAL]["round"] == 1
    # the persistor writes the best file itself; the record still says which round and metric made it
    best_rec = records[BEST]
    assert best_rec["metric_name"] == "accuracy" and best_rec["round"] in (0, 1)
    assert 0.0 <= best_rec["metric_value"] <= 1.0
    check_listing_agrees(table, api, records)


# -- the .npz / .fobs fallback, written by the keeper's own writer --------------------
def test_documented_fallback_lines_load_keras_and_pytorch_npz_and_fobs(tmp_path):
    import torch

    from nvflare.app_common.model_publishing.best_model_keeper import _write_best
    from nvflare.app_opt.tf.utils import flat_layer_weights_dict

    trained = tiny_keras()
    flat = flat_layer_weights_dict({layer.name: layer.get_weights() for layer in trained.layers})
    assert sorted(flat) == ["dense_1_nvf_0", "dense_1_nvf_1", "dense_nvf_0", "dense_nvf_1"]
    kept = _write_best(str(tmp_path), flat, persistor=None)
    assert (kept.file_name, kept.model_format) == ("best_global_model.npz", "numpy_npz")
    loaded = run_documented("keras-npz", model=tiny_keras(), path=kept.path)["model"]
    for a, b in zip(loaded.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)

    net = torch.nn.Linear(4, 2)
    for weights in ({k: v.numpy() for k, v in net.state_dict().items()}, dict(net.state_dict())):  # numpy, tensors
        kept = _write_best(str(tmp_path), weights, persistor=None)
        assert (kept.file_name, kept.model_format) == ("best_global_model.npz", "numpy_npz")
        loaded = run_documented("pytorch-npz", model=torch.nn.Linear(4, 2), path=kept.path)["model"]
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in net.state_dict().items())

    other = {"coef": [0.5, 1.5], "intercept": 2.0, "classes": {"a": 0, "b": 1}}  # neither arrays nor tensors
    kept = _write_best(str(tmp_path), other, persistor=None)
    assert (kept.file_name, kept.model_format) == ("best_global_model.fobs", "fobs")
    assert run_documented("fobs", path=kept.path)["weights"] == other
    # one copy: each kept best replaced the one before, whatever its format
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_global_model.fobs"]


# Judged from this module's source, not from what ran: the system lane and the fast lane
# each run only some of the tests that call run_documented, so a run-time set would be
# lane-dependent (CI runs the lanes separately).
def test_every_documented_loading_line_is_run():
    """A snippet added to the docs without a test that runs it fails here."""
    assert set(documented_snippets()) == {
        "pytorch",
        "keras-weights",
        "numpy-npy",
        "numpy-npz",
        "keras-npz",
        "pytorch-npz",
        "fobs",
    }
    called = set(re.findall(r'run_documented\("([^"]+)"', Path(__file__).read_text()))
    assert called == set(documented_snippets())
