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
"""The reliability scenarios and the table in docs/reliability.md generated from their run.

Each scenario test, once its assertions have passed, records the outcome it proved
(``reliability.record(id, outcome)``, fixture in tests/conftest.py). At the end of the
session test_reliability_table.py compares what was recorded with the table in the repo
(the region between the BEGIN and END markers; the prose around it is free text): a
missing scenario or a changed outcome fails it. ``NVFLARE_FORK_WRITE_RELIABILITY=1``
rewrites the table from the run instead.
"""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
WRITE_ENV = "NVFLARE_FORK_WRITE_RELIABILITY"

# id -> (scenario, what the test injects)
SCENARIOS = {
    "1": (
        "Server killed mid-download",
        "SIGKILL of the server parent while a 200 MiB MODEL_ component streams to fl_admin",
    ),
    "2": ("Admin client killed mid-download", "SIGKILL of fl_admin while it receives a 200 MiB component"),
    "3a": (
        "Short server stall",
        "SIGSTOP of the server parent for 2 s (< file_download_progress_timeout) mid-download",
    ),
    "3b": (
        "Long server stall",
        "SIGSTOP of the server parent for 35 s (> the admin client's retry budget) mid-download",
    ),
    "4": (
        "Concurrent downloads while jobs publish",
        "4 admin sessions download the same 200 MiB component at once while 2 jobs publish models",
    ),
    "5": ("Destination full", "the downloading process may write at most 50 MiB (RLIMIT_FSIZE) of a 200 MiB component"),
    "6": (
        "Stored component corrupted",
        "bytes of a stored model changed (same size) / truncated after it was recorded",
    ),
    "7": ("Restart durability", "server restarted after jobs published models"),
    "8": ("Job deleted while downloading", "delete_job of a finished job while its 200 MiB model streams"),
    "9": (
        "Hostile input",
        "hostile job ids and component names through fl_admin, the FLARE API and raw server commands",
    ),
    "10a": (
        "Authorization matrix",
        "download_job_component by project_admin, org_admin, lead and member users of two orgs",
    ),
    "10b": ("Client site publishes a model", "a client-side job component sends a MODEL_ publish request"),
    # -- publishing files outside the job's run folder (issue 11, section 1): keep these rows together --
    "P1": (
        "Job config publishes the server's key",
        "a lead's config-only job sets PTFileModelPersistor's best_global_model_file_name to the server's "
        "startup/server.key and global_model_file_name to a file outside its run folder",
    ),
    "P2": (
        "Job config publishes and deletes another job's model",
        "another org's lead names a finished job's stored MODEL_ files (absolute and through ..), with "
        "model_publish_drop_from_workspace=true",
    ),
    "P3": (
        "Symlinks out of the run folder",
        "a job's persistor lists a symlink to a file inside its run folder and one to a file outside",
    ),
    "P4": (
        "Raw publish request for a file outside the run folder",
        "the job's own server process sends the store requests naming the server key (absolute, ../, symlink), "
        "with model_publish_transfer auto and stream",
    ),
    # Issue 11 §2-4: attacks on downloads by ordinary accounts (tests/download/test_download_component_authz.py,
    # tests/download/test_download_bounds.py).
    "12a": (
        "Site logs through download_job_component",
        "leads, org_admins and members download other sites' LOG_/ERRORLOG_ components of jobs they may download",
    ),
    "12b": (
        "Download flood from one account",
        "600 raw download_job_component / download_job commands in a few seconds "
        "through one admin session, server parent limited to 512 file descriptors (RLIMIT_NOFILE)",
    ),
    "12c": (
        "Downloads from many sessions of one account",
        "the same account logs in again and again to open more downloads",
    ),
    "12d": ("Many readers of one transfer", "60 HTTPS GETs of one direct transfer that never read the body"),
    "12e": (
        "Stalled direct reader",
        "a direct response whose reader stops reading; a transfer ended (logout) under a " "stalled response",
    ),
    "12f": (
        "Another certificate with the admin's name",
        "a certificate with the admin's CN, signed by the project's root CA, asks for that admin's transfer",
    ),
    "12g": (
        "Downloads from several accounts",
        "two accounts in four sessions open downloads until the server is full; a third account asks for one",
    ),
    "12h": ("Admin sessions from one account", "the same account logs in 6 times without logging out"),
    # Issue 21 §1-2: one account stalling or starving the server through downloads (tests/download/test_download_flood.py).
    "21a": (
        "Range flood from one account",
        "a lead keeps 170 range requests (40 of 2 MiB, 130 of 1 byte) of its own 8 MiB model in flight over 3 "
        "downloads while project_admin's 8-round FedAvg job runs",
    ),
    "21b": (
        "Slow readers",
        "a reader taking 1 byte every 0.5 s; a reader that reads fast and never finishes",
    ),
    "21c": ("Downloads held by a few accounts", "one account opens downloads until the server is almost full"),
}

BEGIN = "<!-- reliability table: begin (generated by tests/support/reliability_table.py) -->"
END = "<!-- reliability table: end -->"
TABLE_HEAD = "| # | Scenario | Injected | Outcome |\n|---|---|---|---|\n"

_ROW = re.compile(r"^\| (\w+) \| (.*) \| (.*) \| (.*) \|$")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def row(sid: str, outcome: str) -> str:
    title, injected = SCENARIOS[sid]
    return f"| {sid} | {_cell(title)} | {_cell(injected)} | {_cell(outcome)} |"


def render_table(outcomes: dict) -> str:
    """The generated region for {scenario id: outcome}, scenarios in registry order."""
    rows = [row(sid, outcomes[sid]) for sid in SCENARIOS if sid in outcomes]
    return f"{BEGIN}\n{TABLE_HEAD}" + "".join(r + "\n" for r in rows) + END


def table_region(text: str) -> str:
    """The generated region of the document ('' if its markers are missing)."""
    if BEGIN not in text or END not in text:
        return ""
    return text[text.index(BEGIN) : text.index(END) + len(END)]


def replace_table(text: str, outcomes: dict) -> str:
    region = table_region(text)
    if not region:
        return text.rstrip("\n") + "\n\n" + render_table(outcomes) + "\n"
    return text.replace(region, render_table(outcomes))


def parse(text: str) -> dict:
    """{scenario id: row line} of the document's generated table."""
    rows = {}
    for line in table_region(text).splitlines():
        m = _ROW.match(line)
        if m and m.group(1) != "#":
            rows[m.group(1)] = line
    return rows


def doc_outcomes(text: str) -> dict:
    return {sid: _ROW.match(line).group(4).replace("\\|", "|") for sid, line in parse(text).items() if sid in SCENARIOS}
