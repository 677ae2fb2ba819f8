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
"""Authorization of download_job_component with the provisioned default policy.

Behaviour test for security-download-job-component-in-the-download-job-category.patch:
without the category mapping only project_admin may download a component, so the
org_admin and lead rows (allowed to download_job) fail. list_job_component_info follows
get_job_meta (the view category).
"""

import pytest
from job_components import LEAD, MEMBER, ORG_ADMIN, OTHER_LEAD, OTHER_ORG_ADMIN, JobStore, write_numpy_job

from nvflare.fuel.flare_api.api_spec import AuthorizationError

pytestmark = pytest.mark.system

PROJECT_ADMIN = "admin@nvidia.com"
# user -> may download a job submitted by lead@nvidia.com (org nvidia) under default_authz
EXPECTED = {
    PROJECT_ADMIN: True,  # any
    ORG_ADMIN: True,  # download_job: o:submitter, same org
    LEAD: True,  # download_job: n:submitter, the submitter
    OTHER_LEAD: False,  # n:submitter, not the submitter
    MEMBER: False,  # view only
    OTHER_ORG_ADMIN: False,  # o:submitter, other org
}


@pytest.fixture(scope="module")
def lead_job(flare_system, tmp_path_factory):
    job_id, meta = flare_system.submit_and_wait(write_numpy_job(tmp_path_factory.mktemp("lead") / "job"), user=LEAD)
    assert meta["submitter_name"] == LEAD
    JobStore(flare_system.jobs_storage).put(job_id, "MODEL_global_model", b"model bytes")
    return job_id


def allowed(call) -> bool:
    try:
        call()
        return True
    except AuthorizationError:
        return False


@pytest.mark.parametrize("user", list(EXPECTED))
def test_same_rights_as_download_job(flare_system, lead_job, user, tmp_path):
    with flare_system.session(user) as sess:
        job = allowed(lambda: sess.download_job_result(lead_job, str(tmp_path / "job")))
        component = allowed(lambda: sess.download_job_component(lead_job, "MODEL_global_model", str(tmp_path / "c")))
        meta = allowed(lambda: sess.get_job_meta(lead_job))
        info = allowed(lambda: sess.list_job_component_info(lead_job))
    assert (job, component) == (EXPECTED[user], EXPECTED[user])
    assert info == meta
    if component:
        assert (tmp_path / "c" / "MODEL_global_model").read_bytes() == b"model bytes"
