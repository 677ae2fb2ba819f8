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
"""best_model_keeper's pieces on real files and a real FLContext (the jobs are in test_framework_models).

What a job cannot be made to do on the shared system is tested here: a run folder whose
``.model_publish`` is a link out of it, and the selector's information in its two shapes.
"""

import os

import numpy as np
import pytest

from nvflare.apis.fl_context import FLContext
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.model_publishing.best_model_keeper import _private_folder, _write_best, best_info
from nvflare.app_common.model_publishing.model_inventory import FALLBACK_DIR


def test_a_linked_publish_folder_is_refused_and_nothing_is_written_outside(tmp_path):
    run_dir, outside = tmp_path / "run", tmp_path / "outside"
    run_dir.mkdir()
    outside.mkdir()
    os.symlink(outside, run_dir / FALLBACK_DIR)
    with pytest.raises(RuntimeError) as e:
        _private_folder(str(run_dir))
    assert str(e.value) == f"{run_dir / FALLBACK_DIR} is not a folder (a link or a file is in its place)"
    assert list(outside.iterdir()) == []


def test_a_file_in_place_of_the_publish_folder_is_refused(tmp_path):
    (tmp_path / FALLBACK_DIR).write_text("x")
    with pytest.raises(RuntimeError, match="is not a folder"):
        _private_folder(str(tmp_path))


def test_the_publish_folder_is_private_and_reused(tmp_path):
    folder = _private_folder(str(tmp_path))
    assert folder == str(tmp_path / FALLBACK_DIR)
    assert os.stat(folder).st_mode & 0o077 == 0
    assert _private_folder(str(tmp_path)) == folder


def test_numpy_persistor_best_is_npy_and_replaces_the_previous_copy(tmp_path):
    class NPModelPersistor:  # matched by name, as upstream's nvflare.app_common.np persistor
        pass

    first = _write_best(str(tmp_path), {"numpy_key": np.ones((2, 2))}, NPModelPersistor())
    second = _write_best(str(tmp_path), {"numpy_key": np.full((2, 2), 7.0)}, NPModelPersistor())
    assert first.path == second.path == str(tmp_path / "best_global_model.npy")
    assert (second.file_name, second.model_format, second.kind, second.temporary) == (
        "best_global_model.npy",
        "numpy_npy",
        "best",
        True,
    )
    np.testing.assert_array_equal(np.load(second.path), np.full((2, 2), 7.0))
    assert os.listdir(tmp_path) == ["best_global_model.npy"]  # no temporary file left


def test_best_info_from_the_selectors_selection_info():
    ctx = FLContext()
    ctx.set_prop(AppConstants.CURRENT_ROUND, 4, private=True, sticky=False)
    ctx.set_prop(AppConstants.VALIDATION_RESULT, -0.25, private=True, sticky=False)  # negated for "min"
    ctx.set_prop(
        AppConstants.METRICS_SELECTION_INFO,
        {
            "key_metric": {"name": "val_loss", "mode": "min"},
            "best_round": 3,
            "best_metrics": {"val_loss": np.float32(0.25)},
        },
        private=True,
        sticky=False,
    )
    assert best_info(ctx) == {"metric_name": "val_loss", "metric_value": 0.25, "metric_mode": "min", "round": 3}


def test_best_info_without_selection_info_uses_the_validation_result_and_round():
    ctx = FLContext()
    ctx.set_prop(AppConstants.CURRENT_ROUND, 2, private=True, sticky=False)
    ctx.set_prop(AppConstants.VALIDATION_RESULT, 0.5, private=True, sticky=False)
    assert best_info(ctx) == {"metric_value": 0.5, "round": 2}
    empty = FLContext()
    empty.set_prop(AppConstants.VALIDATION_RESULT, float("nan"), private=True, sticky=False)
    assert best_info(empty) == {}


def _keras_persistor():
    import keras

    class Persistor:  # what the keeper uses of TFModelPersistor: its Keras model
        model = keras.Sequential(
            [keras.Input(shape=(4,)), keras.layers.Dense(3, name="dense"), keras.layers.Dense(2, name="dense_1")]
        )

    return Persistor()


def test_keras_best_is_written_with_the_persistors_model_which_keeps_its_own_weights(tmp_path):
    import keras

    from nvflare.app_opt.tf.utils import flat_layer_weights_dict

    persistor = _keras_persistor()
    own = [w.copy() for w in persistor.model.get_weights()]
    flat = flat_layer_weights_dict({layer.name: layer.get_weights() for layer in persistor.model.layers})
    best = {k: v + 1.0 for k, v in flat.items()}
    kept = _write_best(str(tmp_path), best, persistor)
    assert (kept.path, kept.file_name, kept.model_format) == (
        str(tmp_path / "best_global_model.weights.h5"),
        "best_global_model.weights.h5",
        "TensorFlow",
    )
    for a, b in zip(persistor.model.get_weights(), own):  # put back
        np.testing.assert_array_equal(a, b)
    loaded = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Dense(3, name="dense"), keras.layers.Dense(2, name="dense_1")]
    )
    loaded.load_weights(kept.path)
    for layer in loaded.layers:
        for i, w in enumerate(layer.get_weights()):
            np.testing.assert_array_equal(w, best[f"{layer.name}_nvf_{i}"])


@pytest.mark.parametrize(
    "weights",
    [
        {"dense_nvf_0": np.ones((5, 3), "float32"), "dense_nvf_1": np.ones(3, "float32")},  # a wrong shape
        {"dense_nvf_0": np.ones((4, 3), "float32")},  # a weight missing
        {"conv_nvf_0": np.ones((4, 3), "float32")},  # a layer it does not have
        {"dense": np.ones((4, 3), "float32")},  # not FLARE's Keras names
    ],
)
def test_keras_weights_that_do_not_fit_the_model_fall_back_to_npz(tmp_path, weights):
    persistor = _keras_persistor()
    own = [w.copy() for w in persistor.model.get_weights()]
    kept = _write_best(str(tmp_path), weights, persistor)
    assert (kept.file_name, kept.model_format) == ("best_global_model.npz", "numpy_npz")
    assert os.listdir(tmp_path) == ["best_global_model.npz"]
    with np.load(kept.path) as npz:
        assert sorted(npz.files) == sorted(weights)
    for a, b in zip(persistor.model.get_weights(), own):
        np.testing.assert_array_equal(a, b)
