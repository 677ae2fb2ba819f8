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
"""Names shared by the server command, the admin client handler and the FLARE API.

The server and the admin client are separate installs that must agree on these strings,
so they live in one module that both import instead of being spelled twice.
"""

# Client-side handler of download_job_component (a FileTransferModule handler).
PULL_COMPONENT_FQN = "file_transfer.pull_component"

# Reply meta keys.
COMPONENT_RECORD = "component_record"  # {sha256, size, file_name, [format], recorded}
COMPONENT_INFO = "component_info"  # [{name, kind, size, [sha256, file_name, format]}]

# In COMPONENT_RECORD: True when the record comes from the job store (written by the
# publisher), False when the server measured the stored bytes for this download.
RECORDED = "recorded"
