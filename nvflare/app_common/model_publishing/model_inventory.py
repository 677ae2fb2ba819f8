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
"""Find a finished job's final and best global model, through public APIs only.

Persistors that keep files describe them in ``get_model_inventory()`` (PyTorch: final
and best; TensorFlow and the ccwf numpy persistor: theirs). The initial checkpoint a job
started from is not a result and is skipped. Persistors without an inventory still leave
the last aggregated model in the FL context, where every server workflow keeps it; that
model is written to a file of its own so it can be published the same way.

The paths an inventory reports are job configuration (user input) and are taken as
candidates only: the publisher opens each through run_folder_files, which refuses
anything but a regular file inside the job's own run folder.
"""

import os
import uuid
from dataclasses import dataclass
from typing import List, Optional

from nvflare.apis.fl_context import FLContext
from nvflare.app_common.abstract.model import ModelLearnable, ModelLearnableKey
from nvflare.app_common.abstract.model_persistor import ModelPersistor
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.model_publishing.model_publish_defs import KIND_BEST, KIND_GLOBAL
from nvflare.app_common.model_publishing.run_folder_files import create_in_run_folder

# Where the fallback writes its file; removed after publishing, so the job's workspace
# archive keeps upstream's content.
FALLBACK_DIR = ".model_publish"
INITIAL_CHECKPOINT = "initial_ckpt"


@dataclass
class ModelFile:
    kind: str  # KIND_GLOBAL or KIND_BEST
    path: str
    file_name: str  # the name the user knows the model by
    model_format: str
    temporary: bool = False  # written by us: delete after publishing


def find_persistor(engine, persistor_id: Optional[str]) -> Optional[ModelPersistor]:
    """The job's model persistor: the configured id, else the only ModelPersistor the job has."""
    if persistor_id:
        comp = engine.get_component(persistor_id)
        if isinstance(comp, ModelPersistor):
            return comp
    run_manager = getattr(engine, "run_manager", None)
    components = getattr(run_manager, "components", None) or {}
    found = [c for c in components.values() if isinstance(c, ModelPersistor)]
    return found[0] if len(found) == 1 else None


def _is_best(key: str, location: str, persistor) -> bool:
    best_file = os.path.basename(str(getattr(persistor, "best_global_model_file_name", "") or ""))
    names = {key, os.path.basename(location)}
    if best_file and best_file in names:
        return True
    return any(os.path.basename(n).lower().startswith("best") for n in names)


def models_from_inventory(persistor: ModelPersistor, fl_ctx: FLContext) -> List[ModelFile]:
    """Final and best model files the persistor reports; [] when it reports none.

    Candidates, not yet trusted: whoever reads one opens it with open_in_run_folder.
    """
    inventory = persistor.get_model_inventory(fl_ctx) or {}
    found = {}
    for key, desc in inventory.items():
        props = getattr(desc, "props", None) or {}
        location = getattr(desc, "location", None)
        if props.get("source") == INITIAL_CHECKPOINT or not isinstance(location, str):
            continue
        if not os.path.isfile(location):
            continue
        kind = KIND_BEST if _is_best(str(key), location, persistor) else KIND_GLOBAL
        # first of a kind wins: inventories list the final model before any extra copies
        found.setdefault(
            kind,
            ModelFile(kind, location, os.path.basename(location), str(getattr(desc, "model_format", "") or "")),
        )
    return [found[k] for k in (KIND_GLOBAL, KIND_BEST) if k in found]


def model_from_context(fl_ctx: FLContext, run_dir: str) -> Optional[ModelFile]:
    """The last global model the workflow left in the FL context, written to a new file in
    ``<run_dir>/FALLBACK_DIR`` (created safely: never through a planted symlink or an existing file)."""
    learnable = fl_ctx.get_prop(AppConstants.GLOBAL_MODEL)
    if not isinstance(learnable, ModelLearnable) or learnable.is_empty():
        return None
    weights = learnable.get(ModelLearnableKey.WEIGHTS)
    stem = f"global_model.{uuid.uuid4().hex[:8]}"
    arrays = as_arrays(weights)
    if arrays is not None:
        import numpy as np

        f, path = create_in_run_folder(run_dir, FALLBACK_DIR, stem + ".npz")
        with f:
            np.savez(f, **arrays)
        return ModelFile(KIND_GLOBAL, path, "global_model.npz", "numpy_npz", temporary=True)
    from nvflare.fuel.utils import fobs

    f, path = create_in_run_folder(run_dir, FALLBACK_DIR, stem + ".fobs")
    with f:
        f.write(fobs.dumps(learnable))
    return ModelFile(KIND_GLOBAL, path, "global_model.fobs", "fobs", temporary=True)


def as_arrays(weights) -> Optional[dict]:
    """{name: numpy array} when every weight is a numpy array or a tensor (torch: moved to numpy), else None.

    Tensors are not left to fobs: outside a running cell it writes them as empty tensors.
    """
    if not isinstance(weights, dict) or not weights:
        return None
    arrays = {}
    for k, v in weights.items():
        if _is_ndarray(v):
            arrays[str(k)] = v
        elif callable(getattr(v, "detach", None)) and callable(getattr(v, "numpy", None)):
            arrays[str(k)] = v.detach().cpu().numpy()
        else:
            return None
    return arrays


def _is_ndarray(value) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"
