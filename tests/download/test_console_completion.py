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
"""TAB completion in the real fl_admin console, on a real terminal (tmux), against the shared system.

Behaviour test of console-tab-completion-of-the-fork-s-job-command-arguments.patch: without
the hook, TAB after ``download_job_component `` offers command names, not job ids.

Two jobs: one submitted by the project admin, one by a lead. Under the default policy the
lead may download (and backfill) only their own job's models, but view every job, so the
lead's TAB offers only their job to download_job_component and backfill_job_model, both
jobs (the more recent first) to list_job_component_info, and of their job's components the
model, not the site's log. Nothing the lead may not use is on the screen.
"""

import os
import re
import time

import pytest
from flare_system import PROJECT_ADMIN
from job_components import LEAD, JobStore, write_numpy_job
from tmux_console import TmuxConsole, tmux_missing

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(tmux_missing(), reason="tmux is not installed: no terminal to test TAB completion in"),
]


@pytest.fixture(scope="module")
def two_jobs(flare_system, tmp_path_factory):
    """(the admin's job, the lead's job), the lead's submitted second, both finished."""
    tmp = tmp_path_factory.mktemp("tab_jobs")
    jobs = []
    for user, name in ((PROJECT_ADMIN, "tab-admin-job"), (LEAD, "tab-lead-job")):
        with flare_system.session(user) as sess:
            jobs.append(sess.submit_job(str(write_numpy_job(tmp / name, name=name))))
        time.sleep(1.1)  # distinct submit times
    for user, job_id in zip((PROJECT_ADMIN, LEAD), jobs):
        with flare_system.session(user) as sess:
            sess.wait_for_job(job_id, timeout=300, poll_interval=0.5)
    store = JobStore(flare_system.jobs_storage)
    for name in ("MODEL_tab_model", "MODEL_tab_best"):
        store.put(jobs[1], name, b"weights" * 100, file_name="tab.pt")
    store.put(jobs[1], "LOG_site-1", b"log\n" * 100, record=False)
    return tuple(jobs)


@pytest.fixture
def console(flare_system):
    consoles = []

    def start(user):
        c = TmuxConsole(flare_system.kit(user), env=flare_system.env)
        consoles.append(c)
        c.wait_for_prompt()
        return c

    yield start
    for c in consoles:
        c.close()


def _fresh_line(c: TmuxConsole, line: str):
    c.clear_line()
    c.clear_screen()
    c.wait_for_prompt()
    c.type(line)
    c.wait_for(lambda s: c.current_line() == f"> {line}".rstrip(), timeout=15, what=f"{line!r} typed")


def listing(c: TmuxConsole, line: str) -> list:
    """Type ``line``, press TAB until readline lists the matches; the lines listed.

    As in bash: a TAB that inserts the matches' common prefix lists nothing; the next two
    TABs do (readline lists on the second TAB that leaves the line unchanged).
    """
    _fresh_line(c, line)
    for _ in range(3):
        c.keys("Tab")
        time.sleep(1.0)  # the server's answer, then readline's
        lines = c.lines()
        if len(lines) > 2:
            break
    lines = c.lines()
    assert len(lines) > 2 and lines[-1].startswith(f"> {line}".rstrip()), lines
    return lines[1:-1]  # between the line typed and the prompt readline drew again


def completed(c: TmuxConsole, line: str, changes: bool = True) -> str:
    """Type ``line``, press TAB once; the line as completed (``changes``: wait for the completion)."""
    _fresh_line(c, line)
    c.keys("Tab")
    if changes:
        c.wait_for(lambda s: c.current_line() != f"> {line}".rstrip(), timeout=15, what=f"a completion of {line!r}")
    else:
        time.sleep(2)  # the server's answer (nothing) has long arrived
    return c.current_line()


def ids(listed: list) -> list:
    return [line.split()[0] for line in listed]


def test_lead_gets_only_what_the_lead_may_use(flare_system, two_jobs, console):
    admin_job, lead_job = two_jobs
    c = console(LEAD)
    # the lead's job completes; the admin's is not offered to download from
    assert completed(c, f"download_job_component {lead_job[:8]}") == f"> download_job_component {lead_job}"
    assert completed(c, f"download_job_component {admin_job[:8]}", changes=False) == (
        f"> download_job_component {admin_job[:8]}"
    )
    # its components: the models, not the site's log
    components = ids(listing(c, f"download_job_component {lead_job} "))
    assert {"MODEL_tab_best", "MODEL_tab_model"} <= set(components), components
    assert all(name.startswith("MODEL_") for name in components), components  # not the site's LOG_site-1
    assert completed(c, f"download_job_component {lead_job} MODEL_tab_m") == (
        f"> download_job_component {lead_job} MODEL_tab_model"
    )
    # a prefix with a '-' in it (readline splits words there) still completes the whole id
    assert completed(c, f"backfill_job_model {lead_job[:11]}") == f"> backfill_job_model {lead_job}"
    # every job may be viewed: both listed, the more recent first, with name, status and time
    listed = listing(c, "list_job_component_info ")
    order = ids(listed)
    assert lead_job in order and admin_job in order and order.index(lead_job) < order.index(admin_job), listed
    assert re.fullmatch(
        rf"{lead_job}  tab-lead-job  FINISHED:COMPLETED  \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d",
        listed[order.index(lead_job)],
    ), listed
    assert completed(c, "backfill_job_model --", changes=False) == "> backfill_job_model --"  # project_admin only
    # upstream's command-name completion is unchanged
    assert completed(c, "get_job_m") == "> get_job_meta"


def test_admin_completes_every_job_and_the_batch_form(flare_system, two_jobs, console):
    admin_job, lead_job = two_jobs
    c = console(PROJECT_ADMIN)
    listed = ids(listing(c, "backfill_job_model "))
    assert listed[0] == "--all" and {admin_job, lead_job} <= set(listed), listed
    assert completed(c, f"download_job_component {admin_job[:8]}") == f"> download_job_component {admin_job}"
    components = ids(listing(c, f"download_job_component {lead_job} "))
    assert {"LOG_site-1", "MODEL_tab_best", "MODEL_tab_model"} <= set(components), components
