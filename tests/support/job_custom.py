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
"""Custom code of the test jobs: what their app/custom/ folders share.

The test jobs' server workflows do all their work in control_flow; the base class here
gives them the three other Controller hooks, which do nothing, once.
"""

import textwrap
from pathlib import Path

CONTROL_FLOW_ONLY = textwrap.dedent(
    '''
    from nvflare.apis.impl.controller import Controller


    class ControlFlowOnly(Controller):
        """A test workflow that is all control_flow: nothing to start, stop or take results from."""

        def start_controller(self, fl_ctx):
            pass

        def stop_controller(self, fl_ctx):
            pass

        def process_result_of_unknown_task(self, client, task_name, client_task_id, result, fl_ctx):
            pass
    '''
)


def write_custom(job: Path, module: str, source: str) -> None:
    """<job>/app/custom/<module>.py with ``source``, and the base class it may import
    (``from control_flow_only import ControlFlowOnly``)."""
    custom = Path(job) / "app" / "custom"
    custom.mkdir(parents=True, exist_ok=True)
    (custom / "control_flow_only.py").write_text(CONTROL_FLOW_ONLY)
    (custom / f"{module}.py").write_text(source)
