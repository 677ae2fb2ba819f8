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
"""One real FLARE system for the fault-injection scenarios, separate from the shared one
(these tests kill, stop and restart its server). Its settings are in support/faults.py.
"""

import pytest
from faults import ADMIN_DOWNLOAD_TIMEOUT, PROGRESS_TIMEOUT, new_job_with_big_model, write_big_file
from flare_system import tuned_system


@pytest.fixture(scope="package")
def fault_system(tmp_path_factory):
    env = {"NVFLARE_ADMIN_DOWNLOAD_TIMEOUT": str(ADMIN_DOWNLOAD_TIMEOUT)}
    admin_config = {"file_download_progress_timeout": PROGRESS_TIMEOUT}
    with tuned_system(tmp_path_factory, "faults", env=env, admin_config=admin_config) as system:
        yield system


@pytest.fixture(scope="package")
def big_file(tmp_path_factory):
    return write_big_file(tmp_path_factory.mktemp("big") / "big.bin")


@pytest.fixture(scope="package")
def big_job(fault_system, big_file, tmp_path_factory):
    return new_job_with_big_model(fault_system, big_file, tmp_path_factory.mktemp("big_job") / "job")
