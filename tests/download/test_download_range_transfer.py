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
"""The range transfer behind download_job_component: several ranges in flight, delivered
in order, retried by offset; the server serves only the admin that opened the transfer.

The read loop's own cases (completion order, retries) run against an in-process fetch
function, because a real network cannot be made to reorder or drop on cue; everything
else runs against the shared real system. The real command uses the ranges when the
direct response is not offered or breaks; test_download_direct_route checks that they
keep 4 in flight there.
"""

import os
import threading
import time

import pytest
from job_components import LEAD, finished_job_with_component

from nvflare.fuel.hci.client.component_range_reader import RangeRefused, RangeRetryable, RangeSource, read_ranges
from nvflare.fuel.hci.job_component_defs import MAX_RANGE_LENGTH, RANGE_TRANSFER

MIB = 1024 * 1024
SIZE = 8 * MIB + 123


class InFlight:
    """Wraps a fetch function; records every request and the most running at once."""

    def __init__(self, fetch):
        self.fetch = fetch
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.requests = []

    def __call__(self, offset, length):
        with self.lock:
            self.requests.append((offset, length))
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return self.fetch(offset, length)
        finally:
            with self.lock:
                self.running -= 1


def read_all(fetch, size, **kwargs) -> bytes:
    out = bytearray()
    read_ranges(fetch, size, out.extend, **kwargs)
    return bytes(out)


# -- the read loop ------------------------------------------------------------------------
DATA = os.urandom(10 * 1000 + 7)


def test_later_ranges_finishing_first_are_delivered_in_order():
    def fetch(offset, length):
        time.sleep(0.05 if offset == 0 else 0.001)  # the first range is the slowest
        return DATA[offset : offset + length]

    counted = InFlight(fetch)
    assert read_all(counted, len(DATA), range_length=1000, in_flight=4) == DATA
    assert counted.most == 4
    assert sorted(counted.requests) == [(o, min(1000, len(DATA) - o)) for o in range(0, len(DATA), 1000)]


def test_a_lost_range_is_requested_again_at_its_offset():
    lost = {3000: 2}  # offset -> replies to lose

    def fetch(offset, length):
        if lost.get(offset):
            lost[offset] -= 1
            raise RangeRetryable("timeout")
        return DATA[offset : offset + length]

    counted = InFlight(fetch)
    assert read_all(counted, len(DATA), range_length=1000, backoff=0.01) == DATA
    assert counted.requests.count((3000, 1000)) == 3


def test_a_range_lost_every_time_stops_the_read():
    def fetch(offset, length):
        if offset == 2000:
            raise RangeRetryable("timeout")
        return DATA[offset : offset + length]

    with pytest.raises(RangeRetryable) as e:
        read_all(fetch, len(DATA), range_length=1000, backoff=0.01)
    assert str(e.value) == "range at offset 2000 failed 4 times, last: timeout"


def test_a_refused_range_is_not_requested_again():
    def fetch(offset, length):
        if offset == 1000:
            raise RangeRefused("no such transfer")
        return DATA[offset : offset + length]

    counted = InFlight(fetch)
    with pytest.raises(RangeRefused, match="^no such transfer$"):
        read_all(counted, len(DATA), range_length=1000)
    assert counted.requests.count((1000, 1000)) == 1


# -- against the real server ---------------------------------------------------------------
@pytest.fixture(scope="module")
def range_job(flare_system, tmp_path_factory):
    data = os.urandom(SIZE)
    return finished_job_with_component(flare_system, tmp_path_factory.mktemp("job"), "MODEL_range", data), data


def open_transfer(sess, job_id):
    meta = sess.api.server_execute(f"download_job_component {job_id} MODEL_range")["meta"]
    assert meta["status"] == "ok", meta
    return meta[RANGE_TRANSFER]


@pytest.mark.system
def test_real_ranges_in_flight_and_sizes(flare_system, range_job):
    job_id, data = range_job
    with flare_system.session() as sess:
        source = RangeSource(sess.api.cell, open_transfer(sess, job_id), timeout=10)
        counted = InFlight(source.fetch)
        assert read_all(counted, SIZE) == data
        source.end("ok")
    assert counted.most == 4
    assert [n for _, n in counted.requests] == [MIB] * 8 + [123]


@pytest.mark.system
def test_a_range_asked_twice_is_the_same_and_a_lost_reply_is_healed(flare_system, range_job):
    job_id, data = range_job
    with flare_system.session() as sess:
        source = RangeSource(sess.api.cell, open_transfer(sess, job_id), timeout=10)
        assert source.fetch(MIB, 100) == source.fetch(MIB, 100) == data[MIB : MIB + 100]
        dropped = []

        def lossy(offset, length):
            got = source.fetch(offset, length)  # the server sent it; the reply is "lost"
            if offset == 5 * MIB and not dropped:
                dropped.append(got)
                raise RangeRetryable("reply lost")
            return got

        assert read_all(lossy, SIZE, backoff=0.01) == data
        assert dropped
        source.end("ok")


@pytest.mark.system
def test_server_refusals(flare_system, range_job):
    job_id, _ = range_job
    with flare_system.session() as sess:
        transfer = open_transfer(sess, job_id)
        source = RangeSource(sess.api.cell, transfer, timeout=10)
        with pytest.raises(RangeRefused) as e:
            source.fetch(SIZE, 10)
        assert str(e.value) == f"range {SIZE}+10 is outside 0..{SIZE} or longer than {MAX_RANGE_LENGTH}"
        with pytest.raises(RangeRefused) as e:
            source.fetch(0, MAX_RANGE_LENGTH + 1)
        assert str(e.value) == f"range 0+{MAX_RANGE_LENGTH + 1} is outside 0..{SIZE} or longer than {MAX_RANGE_LENGTH}"
        with flare_system.session(LEAD) as other:  # another admin's cell cannot use it
            with pytest.raises(RangeRefused) as e:
                RangeSource(other.api.cell, transfer, timeout=10).fetch(0, 10)
        assert str(e.value) == "no such transfer: it ended, expired, or belongs to another admin"
        source.end("ok")
        with pytest.raises(RangeRefused) as e:  # ended: released at once
            source.fetch(0, 10)
        assert str(e.value) == "no such transfer: it ended, expired, or belongs to another admin"


@pytest.mark.system
def test_logout_ends_the_transfer_and_removes_its_folder(flare_system, range_job):
    job_id, _ = range_job
    with flare_system.session() as sess:
        transfer = open_transfer(sess, job_id)
        (tx,) = [
            d for d in (flare_system.server_dir / "transfer").iterdir() if (d / job_id / "MODEL_range").is_symlink()
        ]
        assert len(RangeSource(sess.api.cell, transfer, timeout=10).fetch(0, 10)) == 10
    deadline = time.time() + 10
    while tx.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert not tx.exists()
    log = (flare_system.server_dir / "log.txt").read_text()
    assert f"range transfer {transfer['transfer_id']} ended (cancelled) after 10 bytes served" in log
