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
"""Which of a job's store entries are components a user can fetch one by one, and the right each needs.

Shared by the job component commands (job_component_cmds) and the completion of their
arguments (job_arg_completion), which both decide what a user may download: here, so
neither imports the other. Models (MODEL_*) and names the rule refuses need
``download_job_component``; everything a site uploads (LOG_, ERRORLOG_, ...) needs what
upstream requires for it, ``download_job_components`` (see job_component_cmds).
"""

from typing import List

from nvflare.apis.fl_constant import AdminCommandNames
from nvflare.apis.storage import DataTypes
from nvflare.apis.utils.component_names import FIXED_COMPONENTS, component_name_problem

# Store entries that are not downloadable components ("scheduled" is a tag file).
_NOT_COMPONENTS = set(FIXED_COMPONENTS) | {"scheduled"}


def extra_components(listed) -> List[str]:
    """The components a user can download one by one, as list_job shows them."""
    return sorted(c for c in (listed or []) if c not in _NOT_COMPONENTS and component_name_problem(c) is None)


def component_kind(name: str) -> str:
    return name.split("_", 1)[0]


def download_right(component: str) -> str:
    """The right a download of ``component`` needs.

    A name the rule refuses downloads nothing (the handler says why), so it keeps the
    command's own right and every user sees the same name-rule message as before.
    """
    if component_name_problem(component) or component in FIXED_COMPONENTS:
        return AdminCommandNames.DOWNLOAD_JOB_COMPONENT
    if component.startswith(DataTypes.MODEL.value + "_"):
        return AdminCommandNames.DOWNLOAD_JOB_COMPONENT
    return AdminCommandNames.DOWNLOAD_JOB_COMPONENTS
