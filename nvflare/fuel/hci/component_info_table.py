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
"""What ``list_job_component_info`` tells a user about each component, in one place.

A user picks a model and loads it from this listing: which file it was (original name
and format), what it is worth (the round it comes from; for the best model the metric
that made it best) and how to check it (size, sha256). The console table and the rows
the FLARE API returns are built here from the same dict, so they cannot disagree; the
CLI prints the same row after a download. "signed by" is what the stored provenance
claims (``server (project)``), unverified here: a download and ``nvflare model verify``
verify it (model_provenance).
"""

from typing import List, Optional

from nvflare.apis.utils.component_file_names import download_file_name
from nvflare.apis.utils.component_records import FILE_NAME, FORMAT, SHA256
from nvflare.apis.utils.model_provenance import PROVENANCE, signer_summary
from nvflare.apis.utils.model_record_info import METRIC_MODE, METRIC_NAME, METRIC_VALUE, ROUND

COLUMNS = ["component", "kind", "file name", "format", "size", "round", "best by", "signed by", "sha256"]
SIGNED_BY = "signed_by"  # API row: "server (project)" of a signed component, "" if not signed
NOT_SIGNED = "not signed"

# record fields a row shows besides name, kind and size (anything else in a record, e.g.
# how the store received it, stays in the job meta)
ROW_FIELDS = (SHA256, FILE_NAME, FORMAT, ROUND, METRIC_NAME, METRIC_VALUE, METRIC_MODE)


def info_row(name: str, kind: str, size: int, record: Optional[dict]) -> dict:
    """The API row of one component: name, kind, size, download_name and the record's fields."""
    record = record if isinstance(record, dict) else {}
    row = {"name": name, "kind": kind, "size": size}
    row.update({k: record[k] for k in ROW_FIELDS if k in record})
    row["download_name"] = download_file_name(name, row)
    row[SIGNED_BY] = signer_summary(record.get(PROVENANCE))
    return row


def best_by(row: dict) -> str:
    """``accuracy=0.9375 (max)`` for a model chosen by a metric, else ''."""
    if METRIC_VALUE not in row:
        return ""
    name = row.get(METRIC_NAME) or "metric"
    mode = f" ({row[METRIC_MODE]})" if row.get(METRIC_MODE) else ""
    return f"{name}={row[METRIC_VALUE]:.6g}{mode}"


def table_cells(row: dict) -> List[str]:
    def cell(value) -> str:
        return "-" if value in (None, "") else str(value)

    return [
        cell(row.get("name")),
        cell(row.get("kind")),
        cell(row.get(FILE_NAME)),
        cell(row.get(FORMAT)),
        cell(row.get("size")),
        cell(row.get(ROUND)),
        cell(best_by(row)),
        row.get(SIGNED_BY) or NOT_SIGNED,
        cell(row.get(SHA256)),
    ]


def add_info_table(conn, rows: List[dict]) -> None:
    """The console table of ``rows`` (info_row dicts) on an admin command's connection."""
    table = conn.append_table(COLUMNS)
    for row in rows:
        table.add_row(table_cells(row))
