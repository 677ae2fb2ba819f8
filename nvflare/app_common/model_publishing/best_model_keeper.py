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
"""A best model for every framework, and where each published model comes from.

Why: a model selector (IntimeModelSelector and friends) announces a new best global model
with GLOBAL_BEST_MODEL_AVAILABLE, but only upstream's PyTorch and ccwf numpy persistors
write a file for it; TensorFlow, NPModelPersistor and persistors without an inventory
write nothing, so their users got no best model. This keeper, driven by the job's
ModelPublisher in the server job process, does it for them:

* at GLOBAL_BEST_MODEL_AVAILABLE, when the persistor does not write a best model itself,
  it writes the best model - the global model in the FL context, the model the clients
  measured the metric on, which is what upstream's persistors save - into the job's run
  folder: Keras weights (``.weights.h5``) when the persistor holds a Keras model, ``.npy``
  for NPModelPersistor, else the fallback ``.npz`` (every weight a numpy array or a
  tensor, FLARE's parameter names) or ``.fobs``. One copy: each new best replaces the file, so memory and
  disk stay at one model; the file goes to the publisher's background hasher.
* it remembers the round of the last persisted global model (AFTER_LEARNABLE_PERSIST) and
  the round and key metric of the last best, and the publisher sends them with each
  model (MODEL_INFO), so the store records them for every framework, PyTorch included.

The file is created only inside ``<run folder>/.model_publish`` (a real folder, not a
link; O_EXCL temporary file, then renamed), which the publisher removes after publishing,
so the job's workspace archive keeps upstream's content. Nothing here may fail the job:
every problem is logged and the job goes on without a kept best model.
"""

import math
import os
import stat
import tempfile
import time
from typing import List, Optional

from nvflare.apis.fl_context import FLContext
from nvflare.apis.utils.model_record_info import METRIC_MODE, METRIC_NAME, METRIC_VALUE, MODEL_INFO, ROUND
from nvflare.app_common.abstract.model import ModelLearnable, ModelLearnableKey
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.app_event_type import AppEventType
from nvflare.app_common.model_publishing.model_inventory import (
    FALLBACK_DIR,
    ModelFile,
    as_arrays,
    find_persistor,
    models_from_inventory,
)
from nvflare.app_common.model_publishing.model_publish_defs import KIND_BEST, KIND_GLOBAL
from nvflare.security.logging import secure_format_exception

BEST_STEM = "best_global_model"

# the formats a kept best model is written in (record field "format")
FORMAT_KERAS = "TensorFlow"  # as TFModelPersistor's inventory names its weights file
FORMAT_NPY = "numpy_npy"
FORMAT_NPZ = "numpy_npz"
FORMAT_FOBS = "fobs"


def writes_own_best(persistor) -> bool:
    """Whether the persistor saves a best-model file itself (upstream PyTorch, ccwf numpy)."""
    if persistor is None:
        return False
    if getattr(persistor, "_best_ckpt_save_path", None) or getattr(persistor, "best_global_model_file_name", None):
        return True
    return False


def best_info(fl_ctx: FLContext) -> dict:
    """Round and key metric of the best model just announced, from what the selector set."""
    info = {}
    selection = fl_ctx.get_prop(AppConstants.METRICS_SELECTION_INFO)
    if isinstance(selection, dict):
        key = selection.get("key_metric") if isinstance(selection.get("key_metric"), dict) else {}
        name = key.get("name")
        metrics = selection.get("best_metrics") if isinstance(selection.get("best_metrics"), dict) else {}
        if name is not None:
            info[METRIC_NAME] = str(name)
            if name in metrics:
                info[METRIC_VALUE] = _number(metrics[name])
        if key.get("mode") in ("min", "max"):
            info[METRIC_MODE] = key["mode"]
        if selection.get("best_round") is not None:
            info[ROUND] = _int(selection["best_round"])
    if METRIC_VALUE not in info or info[METRIC_VALUE] is None:
        info[METRIC_VALUE] = _number(fl_ctx.get_prop(AppConstants.VALIDATION_RESULT))
    if info.get(ROUND) is None:
        info[ROUND] = _int(fl_ctx.get_prop(AppConstants.CURRENT_ROUND))
    return {k: v for k, v in info.items() if v is not None}


def _number(value) -> Optional[float]:
    try:
        value = float(value)  # numpy scalars too
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _int(value) -> Optional[int]:
    try:
        return int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


class BestModelKeeper:
    """Owned by one ModelPublisher; ``on_event`` is registered for the two model events.

    Args:
        publisher: the ModelPublisher (its persistor id, logger, run decision and hasher).
    """

    def __init__(self, publisher):
        self.publisher = publisher
        self.info = {KIND_GLOBAL: {}, KIND_BEST: {}}
        self.kept: Optional[ModelFile] = None

    # -- events (job threads; never raise) ---------------------------------------------
    def on_event(self, event_type: str, fl_ctx: FLContext):
        try:
            if not self.publisher._publishes_here(fl_ctx):
                return
            if event_type == AppEventType.AFTER_LEARNABLE_PERSIST:
                r = _int(fl_ctx.get_prop(AppConstants.CURRENT_ROUND))
                self.info[KIND_GLOBAL] = {ROUND: r} if r is not None else {}
            elif event_type == AppEventType.GLOBAL_BEST_MODEL_AVAILABLE:
                self.info[KIND_BEST] = best_info(fl_ctx)
                self._keep(fl_ctx)
        except Exception as e:
            self.publisher.log_warning(fl_ctx, f"Best model not kept at {event_type}: {secure_format_exception(e)}")

    def _keep(self, fl_ctx: FLContext):
        engine = fl_ctx.get_engine()
        persistor = find_persistor(engine, self.publisher.persistor_id)
        if writes_own_best(persistor) or (persistor and _inventory_has_best(persistor, fl_ctx)):
            return
        learnable = fl_ctx.get_prop(AppConstants.GLOBAL_MODEL)
        if not isinstance(learnable, ModelLearnable) or learnable.is_empty():
            self.publisher.log_info(fl_ctx, "New best model announced, but the FL context holds no global model")
            return
        folder = _private_folder(engine.get_workspace().get_run_dir(fl_ctx.get_job_id()))
        start = time.time()
        kept = _write_best(folder, learnable.get(ModelLearnableKey.WEIGHTS), persistor)
        self.kept = kept
        info = self.info[KIND_BEST]
        self.publisher.log_info(
            fl_ctx,
            f"Kept the best global model of round {info.get(ROUND, '?')} as {kept.file_name} "
            f"({kept.model_format}, {os.path.getsize(kept.path)} bytes, {time.time() - start:.2f}s)",
        )
        self._prehash(kept.path, fl_ctx)

    def _prehash(self, path: str, fl_ctx: FLContext):
        """Hand the file to the publisher's background hasher."""
        self.publisher.prehash([path], fl_ctx)

    # -- at END_RUN --------------------------------------------------------------------
    def add_kept_best(self, models: List[ModelFile]) -> List[ModelFile]:
        """``models`` plus the kept best model when the persistor lists none."""
        if any(m.kind == KIND_BEST for m in models) or self.kept is None or not os.path.isfile(self.kept.path):
            return models
        return list(models) + [self.kept]

    def request_fields(self, kind: str) -> dict:
        """What goes into a publish request for a model of ``kind``: {MODEL_INFO: {...}} or {}."""
        info = self.info.get(kind) or {}
        return {MODEL_INFO: dict(info)} if info else {}


def _inventory_has_best(persistor, fl_ctx) -> bool:
    return any(m.kind == KIND_BEST for m in models_from_inventory(persistor, fl_ctx))


def _private_folder(run_dir: str) -> str:
    """``<run_dir>/.model_publish``: created if missing, refused if it is anything but a real folder in run_dir."""
    folder = os.path.join(run_dir, FALLBACK_DIR)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeError(f"{folder} is not a folder (a link or a file is in its place)")
    if os.path.realpath(folder) != os.path.join(os.path.realpath(run_dir), FALLBACK_DIR):
        raise RuntimeError(f"{folder} resolves outside the job's run folder")
    return folder


def _keras_model(persistor):
    model = getattr(persistor, "model", None)
    if all(callable(getattr(model, a, None)) for a in ("save_weights", "get_layer", "get_weights", "set_weights")):
        return model
    return None


def _np_persistor(persistor) -> bool:
    return type(persistor).__name__ == "NPModelPersistor"


def _write_best(folder: str, weights, persistor) -> ModelFile:
    """Write ``weights`` as the one best copy in ``folder``: the persistor's format when possible."""
    keras_model = _keras_model(persistor)
    if keras_model is not None and isinstance(weights, dict):
        kept = _replace_file(folder, ".weights.h5", lambda path: _save_keras_weights(keras_model, weights, path))
        if kept:
            return ModelFile(KIND_BEST, kept, BEST_STEM + ".weights.h5", FORMAT_KERAS, temporary=True)
    arrays = as_arrays(weights)
    if arrays is not None:
        import numpy as np

        if _np_persistor(persistor) and list(arrays) == ["numpy_key"]:
            path = _replace_file(folder, ".npy", lambda p: _write_with(p, lambda f: np.save(f, arrays["numpy_key"])))
            return ModelFile(KIND_BEST, path, BEST_STEM + ".npy", FORMAT_NPY, temporary=True)
        path = _replace_file(folder, ".npz", lambda p: _write_with(p, lambda f: np.savez(f, **arrays)))
        return ModelFile(KIND_BEST, path, BEST_STEM + ".npz", FORMAT_NPZ, temporary=True)
    from nvflare.app_common.abstract.model import make_model_learnable
    from nvflare.fuel.utils import fobs

    data = fobs.dumps(make_model_learnable(weights, {}))
    path = _replace_file(folder, ".fobs", lambda p: _write_with(p, lambda f: f.write(data)))
    return ModelFile(KIND_BEST, path, BEST_STEM + ".fobs", FORMAT_FOBS, temporary=True)


def _write_with(path: str, write):
    with open(path, "r+b") as f:  # the O_EXCL file mkstemp made for us
        write(f)


def _replace_file(folder: str, extension: str, write) -> Optional[str]:
    """Write through ``write(tmp_path)`` into a fresh O_EXCL file, then rename it over the one copy.

    Returns the final path, or None when ``write`` returned False (nothing written).
    """
    fd, tmp = tempfile.mkstemp(prefix=".best-", suffix=extension, dir=folder)
    os.close(fd)
    try:
        if write(tmp) is False:
            os.unlink(tmp)
            return None
        final = os.path.join(folder, BEST_STEM + extension)
        for other in (".weights.h5", ".npy", ".npz", ".fobs"):  # one copy, whatever its format
            if other != extension and os.path.lexists(os.path.join(folder, BEST_STEM + other)):
                os.unlink(os.path.join(folder, BEST_STEM + other))
        os.replace(tmp, final)
        return final
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _save_keras_weights(model, weights: dict, path: str):
    """Save ``weights`` (FLARE's flat ``<layer>_nvf_<i>`` names) with the persistor's Keras model.

    The model keeps its own weights afterwards: they are put back if they differed.
    Returns False when the names do not fit the model (the caller falls back to .npz).
    """
    import numpy as np

    from nvflare.app_opt.tf.utils import unflat_layer_weights_dict

    by_layer = unflat_layer_weights_dict(weights)
    if not by_layer or sum(len(v) for v in by_layer.values()) != len(weights):
        return False
    try:
        layers = {name: model.get_layer(name=name) for name in by_layer}
    except ValueError:
        return False
    before = {name: layer.get_weights() for name, layer in layers.items()}
    if any(len(before[n]) != len(by_layer[n]) for n in layers):
        return False
    same = all(np.array_equal(a, np.asarray(b)) for n in layers for a, b in zip(before[n], by_layer[n]))
    if same:
        model.save_weights(path)
        return True
    try:
        try:
            for name, layer in layers.items():
                layer.set_weights([np.asarray(w) for w in by_layer[name]])
        except ValueError:  # shapes that do not fit the model
            return False
        model.save_weights(path)
    finally:
        for name, layer in layers.items():
            layer.set_weights(before[name])
    return True
