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
"""Remove admin transfer folders left behind by a server that did not stop cleanly.

Every admin download (download_job, download_job_components, download_job_component)
works in ``<admin_storage>/<transaction uuid>/``; the transaction's end removes it. A
server killed mid-download never gets there, and nothing removed the folder later:
symlinks for component downloads, full zip copies of the job for download_job. When the
admin server starts no transaction can be running yet, so every transaction folder in
the directory is a leftover. Only directories named by a UUID are touched: the same
directory holds uploaded apps under their own names.
"""

import os
import shutil
import uuid
from typing import List

from nvflare.fuel.utils.log_utils import get_module_logger

log = get_module_logger(__name__)


def _is_transaction_name(name: str) -> bool:
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


def sweep_stale_transfers(transfer_dir: str) -> List[str]:
    """Remove every transaction folder in ``transfer_dir``; return the names removed."""
    try:
        names = sorted(os.listdir(transfer_dir))
    except OSError:
        return []  # no transfer directory yet: nothing was left behind
    removed = []
    for name in names:
        path = os.path.join(transfer_dir, name)
        if _is_transaction_name(name) and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    if removed:
        log.warning(f"removed {len(removed)} transfer folder(s) left in {transfer_dir} by an earlier server run")
    return removed
