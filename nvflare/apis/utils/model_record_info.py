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
"""Where a published model comes from: its round and, for the best model, its metric.

The job's server process knows these only while the job runs (the workflow's round, the
model selector's key metric); the store keeps them in the component's record so that
``list_job_component_info`` can show them after the job is gone. The job process sends
them under ``MODEL_INFO`` in its publish request; the store keeps only well-formed
values (``clean_model_info``): a job's code can put anything in its FL context.
"""

import math
import re

# publish request key holding {field: value}
MODEL_INFO = "model_info"

# record fields
ROUND = "round"  # final model: the round whose aggregation made it; best: the round its metric was measured in
METRIC_NAME = "metric_name"  # the model selector's key metric
METRIC_VALUE = "metric_value"  # its value for this model (as the clients reported it)
METRIC_MODE = "metric_mode"  # "max" or "min": which way is better

FIELDS = (ROUND, METRIC_NAME, METRIC_VALUE, METRIC_MODE)
MODES = ("max", "min")
MAX_ROUND = 10**9
_METRIC_NAME = re.compile(r"[A-Za-z0-9_.:/ -]{1,64}")


def clean_model_info(info) -> dict:
    """The well-formed fields of ``info``; anything else is dropped, never raised."""
    if not isinstance(info, dict):
        return {}
    clean = {}
    r = info.get(ROUND)
    if type(r) is int and 0 <= r < MAX_ROUND:
        clean[ROUND] = r
    name = info.get(METRIC_NAME)
    if isinstance(name, str) and _METRIC_NAME.fullmatch(name):
        clean[METRIC_NAME] = name
    value = info.get(METRIC_VALUE)
    if type(value) in (int, float) and math.isfinite(value):
        clean[METRIC_VALUE] = float(value)
    mode = info.get(METRIC_MODE)
    if mode in MODES:
        clean[METRIC_MODE] = mode
    return clean
