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
"""FLARE API methods for single job components; ``Session`` binds them as its own methods.

They live here so the patch to flare_api.py stays two lines; ``self`` is the Session.
Errors are the API's usual exceptions carrying the server's message, plus
ComponentNotFound (an InternalError, so existing handlers still catch it).
"""

import os
from typing import List, Optional

from nvflare.apis.fl_constant import AdminCommandNames
from nvflare.apis.utils.component_names import component_name_problem
from nvflare.fuel.flare_api.api_spec import InternalError, InvalidArgumentError
from nvflare.fuel.hci.client.api import ResultKey
from nvflare.fuel.hci.cmd_arg_utils import join_args
from nvflare.fuel.hci.job_component_defs import COMPONENT_INFO
from nvflare.fuel.hci.proto import MetaKey, MetaStatusValue


class ComponentNotFound(InternalError):
    """The job exists but has no component of that name (the message lists what it has)."""


def _run(session, parts: List[str]) -> dict:
    try:
        return session._do_command(join_args(parts))
    except InternalError as e:
        prefix = f"{MetaStatusValue.NO_JOB_COMPONENTS}: "
        if str(e).startswith(prefix):
            raise ComponentNotFound(str(e)[len(prefix) :]) from None
        raise


def download_job_component(self, job_id: str, component_name: str, destination: Optional[str] = None) -> str:
    """Download one component of a job (e.g. ``MODEL_global_model``) as one file.

    Args:
        job_id: ID of the job.
        component_name: a component listed by ``list_job_component_info``.
        destination: folder to put the file in (created if missing; relative to the
            current directory). Default: ``<admin transfer dir>/components/<job_id>``
            (``<admin transfer dir>/<job_id>`` is where download_job_result puts the workspace).

    Returns: path of the downloaded file: ``<folder>/<component_name><extension>`` where
    the extension is the original file's (from the component's record, e.g.
    ``MODEL_global_model.weights.h5``, ``.pt``, ``.npz``; none for components without a
    record), or ``<component_name>__1<extension>``, ``__2``, ... if that name is taken
    (nothing is overwritten). The file loads with its framework's loader as it is. Its
    size and sha256 were checked against the server's record; it is never unzipped.

    Raises:
        InvalidArgumentError: invalid component name (checked before contacting the server).
        JobNotFound: invalid or unknown job id.
        ComponentNotFound: the job has no such component.
        AuthorizationError: the user may not download this job.
        RuntimeError: the transfer or its verification failed; no file was kept.
    """
    self._validate_job_id(job_id)
    problem = component_name_problem(component_name)
    if problem:
        raise InvalidArgumentError(problem)
    parts = [AdminCommandNames.DOWNLOAD_JOB_COMPONENT, job_id, component_name]
    if destination:
        parts.append(os.path.abspath(destination))
    result = _run(self, parts)
    return result[ResultKey.META][MetaKey.LOCATION]


def list_job_component_info(self, job_id: str) -> List[dict]:
    """What ``download_job_component`` can fetch for a job.

    Returns: one dict per component, sorted by name: ``name``, ``kind`` (MODEL, LOG,
    ERRORLOG), ``size`` (bytes, as stored), ``download_name`` (the file name
    ``download_job_component`` gives it before any ``__N``), and for components with a
    record (models stored by the model publisher) ``sha256``, ``file_name`` (original),
    ``format``, ``round`` (the FL round the model comes from, when known) and, for the
    best model, ``metric_name``, ``metric_value`` and ``metric_mode`` (the key metric
    that made it best, measured in ``round``).
    """
    self._validate_job_id(job_id)
    result = _run(self, [AdminCommandNames.LIST_JOB_COMPONENT_INFO, job_id])
    return result[ResultKey.META].get(COMPONENT_INFO, [])


def not_implemented(self, *args, **kwargs):
    """SessionSpec default: sessions that predate the fork's component download."""
    raise NotImplementedError(f"{type(self).__name__} does not support single job components")
