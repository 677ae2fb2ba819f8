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
"""Names shared by the server's completion command and fl_admin's TAB completion.

TAB after ``download_job_component``, ``list_job_component_info`` or
``backfill_job_model`` asks the server, in one hidden command, which job ids (or which
components of a job) this user may use there; the admin client and the server are
separate installs, so the wire names live here.
"""

from nvflare.apis.fl_constant import AdminCommandNames
from nvflare.fuel.hci.model_backfill_defs import BACKFILL_JOB_MODEL

# _complete_job_args <command> jobs [job id prefix]  |  _complete_job_args <command> components <job id>
COMPLETE_JOB_ARGS = "_complete_job_args"  # "_": internal, not in the console's command list
JOBS = "jobs"
COMPONENTS = "components"

# The commands whose arguments are completed: command -> what its arguments are, in order.
COMPLETED_COMMANDS = {
    AdminCommandNames.DOWNLOAD_JOB_COMPONENT: (JOBS, COMPONENTS),
    AdminCommandNames.LIST_JOB_COMPONENT_INFO: (JOBS,),
    BACKFILL_JOB_MODEL: (JOBS,),
}

# Reply meta keys.
CANDIDATES = "completion_candidates"  # [{"value": id or name, "info": one line about it}]
TRUNCATED = "completion_truncated"  # True: more matched than MAX_CANDIDATES

# At most this many candidates per reply (most recent jobs first): type more of the id for the rest.
MAX_CANDIDATES = 100
