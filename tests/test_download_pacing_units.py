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
"""The pacer's timeline, without a server: who waits how long (download_pacing)."""

import pytest

from nvflare.fuel.hci.server import download_pacing

MB = 1000 * 1000


@pytest.fixture
def pacer():
    download_pacing._next_free = 0.0  # an idle pacer: no booked blocks
    download_pacing.set_jobs_running_check(lambda: True)
    download_pacing.set_rate_limit(1 * MB)
    yield download_pacing
    download_pacing.set_rate_limit(0)
    download_pacing._next_free = 0.0


def test_blocks_are_booked_one_after_another_at_the_rate(pacer):
    waits = [pacer.reserve(MB // 2) for _ in range(4)]
    assert waits[0] == 0.0  # an idle pacer has no saved-up credit, and no debt either
    for i, wait in enumerate(waits[1:], start=1):
        assert wait == pytest.approx(0.5 * i, abs=0.05)


def test_no_block_waits_longer_than_max_wait(pacer):
    """Past MAX_WAIT the admin's progress timeout would fail the download: the cap yields."""
    waits = [pacer.reserve(MB) for _ in range(6)]
    assert waits[:3] == pytest.approx([0.0, 1.0, 2.0], abs=0.05)
    assert pacer.MAX_WAIT == 2.0
    assert all(w <= pacer.MAX_WAIT + 0.01 for w in waits)
    assert waits[3:] == pytest.approx([pacer.MAX_WAIT] * 3, abs=0.05)


def test_no_pace_without_a_running_job_or_without_a_limit(pacer):
    pacer.set_jobs_running_check(lambda: False)
    assert [pacer.reserve(10 * MB) for _ in range(3)] == [0.0, 0.0, 0.0]
    pacer.set_jobs_running_check(lambda: True)
    pacer.set_rate_limit(0)
    assert [pacer.reserve(10 * MB) for _ in range(3)] == [0.0, 0.0, 0.0]
