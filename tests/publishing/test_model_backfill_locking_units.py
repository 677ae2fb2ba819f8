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
"""Backfill's claims and slots never wait: a second claim of a job and a command beyond the
limit are answered at once, and both are given back however the holder ends (an exception
included). test_model_backfill_concurrency.py shows the same on a real system."""

import threading
import time

import pytest

from nvflare.app_common.model_publishing import model_backfill as mb
from nvflare.private.fed.server.model_backfill_limits import BackfillSlots, busy_message


def test_one_claim_per_job_and_it_is_given_back():
    with mb._job_claim("a") as first:
        with mb._job_claim("a") as second, mb._job_claim("b") as other:
            assert (first, second, other) == (True, False, True)
    with pytest.raises(RuntimeError), mb._job_claim("a") as again:
        assert again
        raise RuntimeError("the backfill failed")
    with mb._job_claim("a") as after:
        assert after
    assert mb._claimed == set()


def test_slots_refuse_at_once_beyond_the_limit():
    slots = BackfillSlots(2)
    taken = []
    release = threading.Event()

    def hold():
        with slots.take() as ok:
            taken.append(ok)
            release.wait(10)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for t in holders:
        t.start()
    deadline = time.time() + 10
    while len(taken) < 2 and time.time() < deadline:
        time.sleep(0.01)
    with slots.take() as third:
        assert third is False
    release.set()
    for t in holders:
        t.join(10)
    with slots.take() as fourth:
        assert fourth is True
    assert taken == [True, True]
    assert busy_message(2) == (
        "backfill_job_model refused: 2 backfill command(s) are running on this server (model_backfill_limit = 2); "
        "run it again when one has finished"
    )
