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
"""Authorization of download_job_component with the provisioned default policy, for users
of every role in two orgs and jobs submitted in both orgs, and components of each kind:
a model (MODEL_*) follows download_job; a site's log (LOG_*, ERRORLOG_*) or any other
kind a site uploads follows exactly upstream's download_job_components (issue 11 §2:
under the default policy only project_admin, as upstream's own command); the job's fixed
components are download_job's.

Behaviour test for security-download-job-component-in-the-download-job-category.patch:
without the category mapping only project_admin may download a component, so the
org_admin and lead cells (allowed to download_job) fail. list_job_component_info follows
get_job_meta (the view category).

Behaviour test for admin-server-audit-refused-commands-and-sweep-stale-transfer-folders.patch
(its audit half): without it a refused command never reaches the audit log.
"""

import re

import pytest
from job_components import (
    LEAD,
    MEMBER,
    ORG_ADMIN,
    OTHER_LEAD,
    OTHER_ORG_ADMIN,
    OTHER_ORG_LEAD,
    OTHER_ORG_MEMBER,
    JobStore,
    write_numpy_job,
)

from nvflare.fuel.flare_api.api_spec import AuthorizationError

pytestmark = pytest.mark.system

PROJECT_ADMIN = "admin@nvidia.com"
SUBMITTERS = (LEAD, OTHER_ORG_LEAD)  # one job submitted in each org
# user -> the submitters whose jobs the user may download under default_authz
EXPECTED = {
    PROJECT_ADMIN: {LEAD, OTHER_ORG_LEAD},  # any
    ORG_ADMIN: {LEAD},  # download_job: o:submitter
    OTHER_ORG_ADMIN: {OTHER_ORG_LEAD},
    LEAD: {LEAD},  # download_job: n:submitter
    OTHER_LEAD: set(),
    OTHER_ORG_LEAD: {OTHER_ORG_LEAD},
    MEMBER: set(),  # view only
    OTHER_ORG_MEMBER: set(),
}


# A site's components, stored the way a client's upload is (no record): name -> bytes.
SITE_COMPONENTS = {"LOG_site-1": b"site-1 log lines", "ERRORLOG_site-2": b"site-2 errors"}


@pytest.fixture(scope="module")
def jobs(flare_system, tmp_path_factory):
    """{submitter: job id}, each job holding a MODEL_global_model and the SITE_COMPONENTS."""
    found = {}
    store = JobStore(flare_system.jobs_storage)
    for submitter in SUBMITTERS:
        folder = write_numpy_job(tmp_path_factory.mktemp("authz") / "job")
        job_id, meta = flare_system.submit_and_wait(folder, user=submitter)
        assert meta["submitter_name"] == submitter
        store.put(job_id, "MODEL_global_model", b"model bytes")
        for name, data in SITE_COMPONENTS.items():
            store.put(job_id, name, data, record=False)  # a site's upload: no record
        found[submitter] = job_id
    return found


def allowed(call) -> bool:
    try:
        call()
        return True
    except AuthorizationError:
        return False


def refusals(flare_system, user: str, command: str, job_id: str, rest: str = r"[^\]]*") -> list:
    line = re.compile(rf"\[U:{re.escape(user)}\]\[A:(\S+\.)?{command} {job_id}{rest}\] REFUSED: (.*)$")
    return [m.group(2) for m in map(line.search, flare_system.audit_log.read_text().splitlines()) if m]


@pytest.mark.parametrize("user", list(EXPECTED))
def test_same_rights_as_download_job(flare_system, jobs, user, tmp_path, reliability):
    for submitter, job_id in jobs.items():
        with flare_system.session(user) as sess:
            job = allowed(lambda: sess.download_job_result(job_id, str(tmp_path / "job")))
            component = allowed(lambda: sess.download_job_component(job_id, "MODEL_global_model", str(tmp_path / "c")))
            meta = allowed(lambda: sess.get_job_meta(job_id))
            info = allowed(lambda: sess.list_job_component_info(job_id))
        may = submitter in EXPECTED[user]
        assert (job, component) == (may, may), submitter
        assert info == meta
        if component:
            assert (tmp_path / "c" / "MODEL_global_model").read_bytes() == b"model bytes"
            (tmp_path / "c" / "MODEL_global_model").unlink()
        else:
            for command in ("download_job", "download_job_component"):
                args = " MODEL_global_model" if command == "download_job_component" else ""
                assert refusals(flare_system, user, command, job_id, args) == [
                    f"Authorization Error: user '{user}' is not authorized for '{command}'"
                ], (command, submitter)
    reliability.record(
        "10a",
        "8 users x jobs of 2 orgs: download_job_component allowed exactly where download_job is (project_admin: "
        "both; org_admin: own org's job; lead: own job; member: none); each refusal of either command is in the "
        "server's audit.log as `[U:<user>][A:<command> <job>...] REFUSED: Authorization Error: ...`",
    )


@pytest.mark.parametrize("user", list(EXPECTED))
def test_site_components_need_upstreams_right(flare_system, jobs, user, tmp_path, reliability):
    """LOG_/ERRORLOG_ (every kind but MODEL_ that a store may hold): allowed exactly where
    upstream's download_job_components is (only project_admin under the default policy),
    whatever download_job allows."""
    for submitter, job_id in jobs.items():
        with flare_system.session(user) as sess:
            upstream = allowed(lambda: sess.download_job_components(job_id))
            got = {
                name: allowed(lambda: sess.download_job_component(job_id, name, str(tmp_path / name)))
                for name in SITE_COMPONENTS
            }
        assert upstream == (user == PROJECT_ADMIN), submitter
        assert got == {name: upstream for name in SITE_COMPONENTS}, submitter
        for name, data in SITE_COMPONENTS.items():
            if upstream:
                assert (tmp_path / name / name).read_bytes() == data
            else:
                assert not (tmp_path / name).exists() or not any((tmp_path / name).iterdir())
                assert refusals(flare_system, user, "download_job_component", job_id, f" {name}") == [
                    f"Authorization Error: user '{user}' is not authorized for 'download_job_components'"
                ], (name, submitter)
        if not upstream:
            assert refusals(flare_system, user, "download_job_components", job_id) == [
                f"Authorization Error: user '{user}' is not authorized for 'download_job_components'"
            ], submitter
    reliability.record(
        "12a",
        "8 users x jobs of 2 orgs x LOG_site-1, ERRORLOG_site-2: allowed exactly where upstream's "
        "download_job_components is (default policy: project_admin only; leads and org_admins of the job's org "
        "refused although they may download its models); each refusal in audit.log as `[U:<user>][A:"
        "download_job_component <job> <component>] REFUSED: Authorization Error: user '<user>' is not authorized "
        "for 'download_job_components'`",
    )


@pytest.mark.parametrize("user", [PROJECT_ADMIN, LEAD, MEMBER])
def test_fixed_components_follow_download_job(flare_system, jobs, user):
    """workspace/data/meta: download_job's right, then the command points to download_job."""
    job_id = jobs[LEAD]
    with flare_system.session(user) as sess:
        for name in ("workspace", "meta", "data"):
            if user == MEMBER:
                with pytest.raises(AuthorizationError):
                    sess.download_job_component(job_id, name)
            else:
                with pytest.raises(Exception) as e:
                    sess.download_job_component(job_id, name)
                assert not isinstance(e.value, AuthorizationError)
                expected = f"syntax error: component '{name}' is part of every job: download it with download_job"
                assert str(e.value) == expected
