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
"""Server settings for model publishing, read the upstream way.

Each setting is a top-level key of the server's ``local/resources.json`` (or
``NVFLARE_<KEY upper>`` in the environment, which ConfigService consults when the key is
absent), so operators configure publishing where they configure everything else on the
server. The store reads and checks them once, when the server starts (ConfigService has
the server's config by then, not yet when components are built); a bad value is logged
with the key's name and turns publishing off instead of surfacing at the end of a job.
"""

from dataclasses import dataclass

from nvflare.apis.fl_constant import SystemConfigs
from nvflare.apis.storage import DataTypes
from nvflare.apis.utils.component_names import component_name_problem
from nvflare.app_common.model_publishing.model_publish_defs import KIND_BEST, KIND_GLOBAL, MODE_STREAM
from nvflare.fuel.utils.config_service import ConfigService

ENABLED = "model_publish_enabled"
GLOBAL_NAME = "model_publish_global_name"
BEST_NAME = "model_publish_best_name"
TRANSFER = "model_publish_transfer"
DROP_FROM_WORKSPACE = "model_publish_drop_from_workspace"
TIMEOUT = "model_publish_timeout"
JOB_IMAGES_HAVE_FORK = "model_publish_job_images_have_fork"

TRANSFER_AUTO = "auto"  # link/copy when the job process shares our filesystem, else stream
TRANSFERS = (TRANSFER_AUTO, MODE_STREAM)

DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class PublishSettings:
    enabled: bool = True
    global_name: str = "global_model"
    best_name: str = "best_global_model"
    transfer: str = TRANSFER_AUTO
    drop_from_workspace: bool = False
    timeout: float = DEFAULT_TIMEOUT
    # Launchers that run a job's server process from its own image (k8s, docker, slurm):
    # the operator's word that those images contain the fork, so the publisher can be added.
    job_images_have_fork: bool = False

    def component_for(self, kind: str) -> str:
        name = self.best_name if kind == KIND_BEST else self.global_name
        return f"{DataTypes.MODEL.value}_{name}"


def publish_timeout() -> float:
    """Seconds one model may take from publish request to stored (also read by the job process)."""
    try:
        value = ConfigService.get_float_var(TIMEOUT, conf=SystemConfigs.RESOURCES_CONF, default=None)
    except ValueError as e:
        raise ValueError(f"invalid model publishing setting {TIMEOUT}: {e}") from None
    if value is None:
        return DEFAULT_TIMEOUT
    if value <= 0:
        raise ValueError(f"{TIMEOUT} must be a positive number of seconds, got {value!r}")
    return value


def _strict_bool(key: str, value) -> bool:
    # Not get_bool_var: it reads any unknown word ("ture") as false, silently.
    word = str(value).strip().lower()
    if word in ("true", "yes", "1"):
        return True
    if word in ("false", "no", "0"):
        return False
    raise ValueError(f"invalid model publishing setting {key}: {value!r} must be true or false")


def load_publish_settings() -> PublishSettings:
    """The server's publishing settings; ValueError naming the bad key if one is invalid."""
    defaults = PublishSettings()

    def get(getter, key, default):
        # default=None: ConfigService caches any non-None answer, a default included
        try:
            value = getter(key, conf=SystemConfigs.RESOURCES_CONF, default=None)
        except ValueError as e:
            raise ValueError(f"invalid model publishing setting {key}: {e}") from None
        return default if value is None else value

    settings = PublishSettings(
        enabled=get(ConfigService.get_bool_var, ENABLED, defaults.enabled),
        global_name=get(ConfigService.get_str_var, GLOBAL_NAME, defaults.global_name),
        best_name=get(ConfigService.get_str_var, BEST_NAME, defaults.best_name),
        transfer=get(ConfigService.get_str_var, TRANSFER, defaults.transfer),
        drop_from_workspace=get(ConfigService.get_bool_var, DROP_FROM_WORKSPACE, defaults.drop_from_workspace),
        timeout=publish_timeout(),
        job_images_have_fork=_strict_bool(
            JOB_IMAGES_HAVE_FORK, get(ConfigService.get_str_var, JOB_IMAGES_HAVE_FORK, defaults.job_images_have_fork)
        ),
    )
    for key, kind in ((GLOBAL_NAME, KIND_GLOBAL), (BEST_NAME, KIND_BEST)):
        problem = component_name_problem(settings.component_for(kind))
        if problem:
            raise ValueError(f"invalid model publishing setting {key}: {problem}")
    if settings.global_name == settings.best_name:
        raise ValueError(f"{GLOBAL_NAME} and {BEST_NAME} must differ, both are {settings.global_name!r}")
    if settings.transfer not in TRANSFERS:
        raise ValueError(
            f"invalid model publishing setting {TRANSFER}: {settings.transfer!r} is not one of {TRANSFERS}"
        )
    return settings
