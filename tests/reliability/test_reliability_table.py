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
"""docs/reliability.md is the table of what the reliability scenarios proved in a test run
(its one home: README.md links to it).

Runs last (tests/conftest.py orders it): fails if a scenario is missing from the table,
if the table is not exactly what the generator writes, or if a scenario that ran in this
session proved something other than what the table says.
"""

import os

import pytest
from reliability_table import (
    DOC,
    SCENARIOS,
    WRITE_ENV,
    doc_outcomes,
    parse,
    render_table,
    replace_table,
    row,
    table_region,
)


# Marked system: it judges what this session's system scenarios recorded, so it belongs
# with them (pytest -m system), not with the fast lane.
@pytest.mark.system
def test_reliability_table_is_current(reliability):
    text = DOC.read_text() if DOC.exists() else ""
    if os.environ.get(WRITE_ENV):
        DOC.write_text(replace_table(text, {**doc_outcomes(text), **reliability.outcomes}))
        text = DOC.read_text()
    in_doc = parse(text)
    missing = [sid for sid in SCENARIOS if sid not in in_doc]
    assert not missing, f"{DOC} has no row for scenario(s) {missing}: run the tests with {WRITE_ENV}=1"
    assert table_region(text) == render_table(
        doc_outcomes(text)
    ), f"{DOC}'s table was edited by hand or has unknown rows"
    stale = {
        sid: {"table": in_doc[sid], "this run": row(sid, outcome)}
        for sid, outcome in reliability.outcomes.items()
        if in_doc[sid] != row(sid, outcome)
    }
    assert not stale, f"{DOC} is stale (run the tests with {WRITE_ENV}=1): {stale}"
