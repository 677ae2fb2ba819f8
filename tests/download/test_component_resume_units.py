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
"""Resumable downloads without a FLARE system: block hashes, partial files, where files land.

Real files in a temp folder, real hashing, real flock; the system test
(test_download_component_resume.py) kills a real admin half way.
"""

import hashlib
import os
import subprocess
import sys
import time

import pytest

from nvflare.apis.utils.component_block_hashes import (
    BLOCK_SHA256,
    BLOCK_SIZE,
    MAX_BLOCKS,
    MIN_BLOCK,
    BlockSha256Counter,
    block_size_for,
    recorded_blocks,
    senders_block_fields,
)
from nvflare.apis.utils.component_records import make_record
from nvflare.fuel.hci.client.component_landing import SPACE_MARGIN, NotEnoughSpace, already_downloaded, check_space
from nvflare.fuel.hci.client.component_partial import (
    STALE_AFTER,
    PartialBusy,
    PartialFile,
    partial_path,
    remove_stale_partials,
)
from nvflare.fuel.utils.background_hash import BackgroundHash
from nvflare.fuel.utils.file_digest import Sha256Counter

MIB = 1024 * 1024


def test_block_size_keeps_the_list_short():
    assert block_size_for(0) == MIN_BLOCK
    assert block_size_for(MIN_BLOCK * MAX_BLOCKS) == MIN_BLOCK
    assert block_size_for(MIN_BLOCK * MAX_BLOCKS + 1) == 2 * MIN_BLOCK
    assert block_size_for(10**12) // MIN_BLOCK & (block_size_for(10**12) // MIN_BLOCK - 1) == 0
    assert -(-(10**12) // block_size_for(10**12)) <= MAX_BLOCKS


def _data(n: int) -> bytes:
    return (hashlib.sha256(b"seed").digest() * (n // 32 + 1))[:n]


@pytest.mark.parametrize("size", [0, 5, MIN_BLOCK, MIN_BLOCK + 7, 2 * MIN_BLOCK])
def test_block_counter_hashes_each_block_and_the_whole(size):
    data = _data(size)
    counter = BlockSha256Counter(size)
    for i in range(0, max(size, 1), 3 * MIB + 5):  # buffers that straddle block ends
        counter.update(data[i : i + 3 * MIB + 5])
    expected = [hashlib.sha256(data[i : i + MIN_BLOCK]).hexdigest() for i in range(0, max(size, 1), MIN_BLOCK)]
    assert counter.result() == (hashlib.sha256(data).hexdigest(), size)
    assert counter.fields() == {BLOCK_SIZE: MIN_BLOCK, BLOCK_SHA256: expected}
    assert recorded_blocks({"size": size, **counter.fields()}) == (MIN_BLOCK, expected)


def test_malformed_block_fields_count_as_absent():
    good = {"size": MIN_BLOCK + 1, BLOCK_SIZE: MIN_BLOCK, BLOCK_SHA256: ["a" * 64, "b" * 64]}
    assert recorded_blocks(good) is not None
    for bad in (
        {BLOCK_SHA256: ["a" * 64]},  # one short
        {BLOCK_SHA256: ["a" * 64, "B" * 64]},  # not lower-case hex
        {BLOCK_SHA256: "a" * 128},
        {BLOCK_SIZE: MIN_BLOCK - 1},
        {BLOCK_SIZE: MIN_BLOCK * 3},  # not a power of two
        {BLOCK_SIZE: True},
    ):
        assert recorded_blocks({**good, **bad}) is None, bad
    assert senders_block_fields(MIN_BLOCK + 1, MIN_BLOCK, good[BLOCK_SHA256]) == {
        BLOCK_SIZE: MIN_BLOCK,
        BLOCK_SHA256: good[BLOCK_SHA256],
    }
    assert senders_block_fields(MIN_BLOCK + 1, 2 * MIN_BLOCK, ["a" * 64]) == {}  # not the rule's block size


def test_make_record_carries_the_block_hashes(tmp_path):
    data = _data(MIN_BLOCK + 100)
    (tmp_path / "m.pt").write_bytes(data)
    record = make_record(str(tmp_path / "m.pt"))
    assert record["sha256"] == hashlib.sha256(data).hexdigest() and record["size"] == len(data)
    assert record[BLOCK_SHA256] == [
        hashlib.sha256(data[:MIN_BLOCK]).hexdigest(),
        hashlib.sha256(data[MIN_BLOCK:]).hexdigest(),
    ]


def test_background_hash_releases_every_buffer_and_reports_errors():
    released = []
    counter = BackgroundHash(Sha256Counter())
    for i in range(20):
        counter.update(bytes([i]) * 5000, lambda i=i: released.append(i))
    assert counter.finish().result() == (
        hashlib.sha256(b"".join(bytes([i]) * 5000 for i in range(20))).hexdigest(),
        100000,
    )
    assert released == list(range(20))

    class Broken:
        def update(self, data):
            raise ValueError("disk on fire")

    broken = BackgroundHash(Broken())
    broken.update(b"x")
    with pytest.raises(ValueError, match="disk on fire"):
        broken.finish()


# -- partial files ---------------------------------------------------------------------
SIZE = 3 * MIN_BLOCK + 1000  # four blocks, the last short


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.bin"
    path.write_bytes(os.urandom(SIZE))
    return path, make_record(str(path), file_name="FL_global_model.pt")


def _partial(folder, model, length: int, damage_at=None) -> str:
    path, record = model
    part = partial_path(str(folder), "MODEL_global_model", record)
    with open(path, "rb") as src, open(part, "wb") as dst:
        dst.write(src.read(length))
        if damage_at is not None:
            dst.seek(damage_at)
            dst.write(b"\0garbage\0")
    return part


def test_partial_name_is_the_final_name_plus_part(tmp_path, model):
    assert partial_path(str(tmp_path), "MODEL_global_model", model[1]) == str(tmp_path / "MODEL_global_model.pt.part")


def test_a_verified_prefix_is_kept_in_whole_blocks(tmp_path, model):
    part = _partial(tmp_path, model, 2 * MIN_BLOCK + 12345)
    partial = PartialFile(part)
    try:
        kept, counter, note = partial.resume_point(model[1])
    finally:
        partial.close()
    assert kept == 2 * MIN_BLOCK
    with open(model[0], "rb") as f:
        assert counter.result() == (hashlib.sha256(f.read(kept)).hexdigest(), kept)
    assert os.path.getsize(part) == kept  # the unverifiable tail is cut off
    assert note == (
        f"resuming from byte {kept} of {SIZE}: {part} held {2 * MIN_BLOCK + 12345} bytes, the first {kept} "
        "verified against the recorded block hashes"
    )


def test_a_damaged_block_is_where_the_resume_starts(tmp_path, model):
    part = _partial(tmp_path, model, SIZE, damage_at=MIN_BLOCK + 5)
    partial = PartialFile(part)
    try:
        kept, counter, _ = partial.resume_point(model[1])
    finally:
        partial.close()
    assert kept == MIN_BLOCK and counter.size == MIN_BLOCK
    with open(model[0], "rb") as f:
        assert counter.hexdigest() == hashlib.sha256(f.read(MIN_BLOCK)).hexdigest()


def test_a_whole_file_left_as_partial_needs_nothing_more(tmp_path, model):
    part = _partial(tmp_path, model, SIZE)
    partial = PartialFile(part)
    try:
        kept, counter, note = partial.resume_point(model[1])
    finally:
        partial.close()
    assert (kept, counter.hexdigest()) == (SIZE, model[1]["sha256"])
    assert note == f"resuming from byte {SIZE} of {SIZE}: {part} verified against the recorded block hashes"


def test_another_version_is_discarded_with_a_message(tmp_path, model):
    part = _partial(tmp_path, model, 2 * MIN_BLOCK, damage_at=10)
    partial = PartialFile(part)
    try:
        assert partial.resume_point(model[1])[::2] == (
            0,
            f"discarded the partial file {part} ({2 * MIN_BLOCK} bytes): it is not the beginning of this component "
            "as the server holds it (another version, or another job's component of that name); downloading "
            "from the start",
        )
    finally:
        partial.close()
    assert os.path.getsize(part) == 0


def test_a_record_without_block_hashes_restarts(tmp_path, model):
    record = {k: v for k, v in model[1].items() if k not in (BLOCK_SIZE, BLOCK_SHA256)}
    part = _partial(tmp_path, model, MIN_BLOCK)
    partial = PartialFile(part)
    try:
        kept, _, note = partial.resume_point(record)
    finally:
        partial.close()
    assert kept == 0 and os.path.getsize(part) == 0
    assert note == (
        f"discarded the partial file {part} ({MIN_BLOCK} bytes): the component's record has no block hashes "
        "(stored before resumable downloads, or measured by the server for this download), so no part of it can "
        "be verified; downloading from the start"
    )


def test_one_download_at_a_time_per_partial_file(tmp_path, model):
    part = _partial(tmp_path, model, 10)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import fcntl,sys,time; f=open({part!r},'rb'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(PartialBusy) as e:
            PartialFile(part)
        assert str(e.value) == f"another download is writing {part}: wait for it to finish, or stop it"
        holder.kill()  # a killed download releases the file at once
        holder.wait()
        PartialFile(part).close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_stale_partials_are_removed_after_seven_days_unless_held(tmp_path, model):
    old = time.time() - STALE_AFTER - 60
    stale = tmp_path / "MODEL_x.part"
    fresh = tmp_path / "MODEL_y.part"
    legacy = tmp_path / "MODEL_z.part-ab12_x9q"  # a temp file of releases before resumable downloads
    mine = tmp_path / "MODEL_global_model.pt.part"
    held = tmp_path / "MODEL_held.part"
    unrelated = tmp_path / "notes.txt"
    for p in (stale, fresh, legacy, mine, held, unrelated):
        p.write_bytes(b"x")
    for p in (stale, legacy, mine, held, unrelated):
        os.utime(p, (old, old))
    keeper = PartialFile(str(held))
    try:
        removed = remove_stale_partials(str(tmp_path), keep=str(mine))
    finally:
        keeper.close()
    assert sorted(removed) == sorted([str(stale), str(legacy)])
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in (fresh, mine, held, unrelated))


# -- where files land --------------------------------------------------------------------
def test_an_identical_file_is_found_under_any_download_name(tmp_path, model):
    path, record = model
    record = {**record, "recorded": True}
    (tmp_path / "MODEL_global_model.pt").write_bytes(b"an older version")
    assert already_downloaded(str(tmp_path), "MODEL_global_model", record) == (
        None,
        str(tmp_path / "MODEL_global_model.pt"),
    )
    os.link(path, tmp_path / "MODEL_global_model__1.pt")
    assert already_downloaded(str(tmp_path), "MODEL_global_model", record) == (
        str(tmp_path / "MODEL_global_model__1.pt"),
        None,
    )


def test_same_size_other_bytes_is_not_the_same_file(tmp_path, model):
    _, record = model
    with open(tmp_path / "MODEL_global_model.pt", "wb") as f:
        f.truncate(SIZE)
    assert already_downloaded(str(tmp_path), "MODEL_global_model", record)[0] is None


def test_space_check_names_both_numbers(tmp_path):
    import shutil

    free = shutil.disk_usage(tmp_path).free
    check_space(str(tmp_path / "not" / "yet"), "MODEL_x", 1000, 1000, 0)  # fits; the folder is not created
    assert not (tmp_path / "not").exists()
    needed = free + 10**12
    with pytest.raises(NotEnoughSpace) as e:
        check_space(str(tmp_path), "MODEL_x", needed, needed + 5, 5)
    message = str(e.value)
    got_free = int(message.rsplit("and ", 1)[1].split()[0])
    assert abs(got_free - free) < 512 * MIB  # the same disk, measured a moment later
    assert message == (
        f"not enough free space in {tmp_path} for MODEL_x: it needs {needed + SPACE_MARGIN} bytes "
        f"({needed + 5} bytes recorded, 5 of them already in its partial file, plus {SPACE_MARGIN} for its "
        f"proof file and file-system overhead), and {got_free} bytes are free"
    )


def test_publishing_checks_the_staging_space_first(tmp_path):
    import shutil

    from nvflare.app_common.widgets.job_model_store import STAGING_MARGIN, _check_staging_space, _NoSpace

    _check_staging_space(str(tmp_path), 1000, "job-1", "global")  # fits
    size = shutil.disk_usage(tmp_path).free + 10**12
    with pytest.raises(_NoSpace) as e:
        _check_staging_space(str(tmp_path), size, "job-1", "global")
    free = int(str(e.value).rsplit("and ", 1)[1].split()[0])
    assert str(e.value) == (
        f"not enough free disk space to store the global model of job job-1: it needs {size + STAGING_MARGIN} bytes "
        f"({size} bytes plus a margin of {STAGING_MARGIN}) in {tmp_path}, and {free} bytes are free"
    )
