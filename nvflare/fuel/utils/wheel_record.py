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
"""A wheel's RECORD, written as its entries are: one writer for every wheel the fork makes.

Two places write wheels: the build (setup.py repacks upstream's wheel) and the
provisioner (lighter/impl/fork_image.py rebuilds the installed fork for container images
and cloud VMs). pip refuses a wheel whose RECORD disagrees with its files, and checks an
installed file against the hash its RECORD holds, so the hash format and the RECORD's
own row must be the same in both: ``WheelWriter`` adds each entry and its row together,
and ``record_hash`` is the form RECORD stores (PEP 376/427: urlsafe base64 sha256, no
padding).

Standard library only: setup.py loads this file by path inside pip's isolated build,
where no nvflare is installed.
"""

import base64
import csv
import hashlib
import io
import zipfile


def record_hash(data: bytes) -> str:
    """``sha256=<urlsafe base64, unpadded>`` of ``data``, as a RECORD row holds it."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


class WheelWriter:
    """Writes entries into an open wheel (a ZipFile) and, last, the RECORD listing them."""

    def __init__(self, zf: zipfile.ZipFile):
        self.zf = zf
        self.rows = []

    def add(self, info: zipfile.ZipInfo, data: bytes, compresslevel=None) -> None:
        """Write ``data`` as the entry ``info`` (its compression, date and mode as given) and record it."""
        self.zf.writestr(info, data, compresslevel=compresslevel)
        self.rows.append((info.filename, record_hash(data), str(len(data))))

    def write_record(self, info: zipfile.ZipInfo, compresslevel=None) -> None:
        """Write the RECORD entry ``info``: a row per entry added, then its own row (no hash, no size)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerows(self.rows)
        writer.writerow((info.filename, "", ""))
        self.zf.writestr(info, buf.getvalue().encode(), compresslevel=compresslevel)
