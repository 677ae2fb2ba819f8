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
"""Shared fixtures: the repo paths, the built wheels, and one real FLARE system per session."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_build():
    """The repo's setup.py as a module (the build's own functions), without importing nvflare."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fork_build", REPO / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def fork_build():
    return _load_build()


@pytest.fixture(scope="session")
def upstream_wheel(fork_build) -> Path:
    return fork_build.locate_upstream_wheel()


@pytest.fixture(scope="session")
def fork_wheel(fork_build, tmp_path_factory) -> Path:
    """The wheel under test: the one tools/test.sh installed, else a fresh build."""
    given = os.environ.get("NVFLARE_FORK_TEST_WHEEL")
    if given:
        return Path(given)
    return fork_build.build_wheel_file(tmp_path_factory.mktemp("wheel"), log=lambda m: None)


@pytest.fixture(scope="session")
def flare_system(tmp_path_factory):
    """One real POC system (server + 2 clients) shared by every test that needs it."""
    from flare_system import FlareSystem
    from job_components import add_role_users

    system = FlareSystem(tmp_path_factory.mktemp("flare"), project_edit=add_role_users)
    try:
        system.prepare().start()
        yield system
    finally:
        system.stop()


class ReliabilityRecorder:
    """Outcomes proved by the reliability scenarios of this session (see reliability_table)."""

    def __init__(self):
        self.outcomes = {}

    def record(self, scenario: str, outcome: str):
        from reliability_table import SCENARIOS

        assert scenario in SCENARIOS, f"unknown reliability scenario {scenario!r}"
        first = self.outcomes.setdefault(scenario, outcome)
        assert first == outcome, f"scenario {scenario}: two outcomes recorded: {first!r} and {outcome!r}"


@pytest.fixture(scope="session")
def reliability():
    return ReliabilityRecorder()


# Fixtures that start a real FLARE system; a test using one (directly or through another
# fixture) must be marked system, so that -m "not system" (the fast lane) starts none.
SYSTEM_FIXTURES = ("flare_system", "fault_system")
IS_SYSTEM_TEST_ENV = "NVFLARE_FORK_TEST_IS_SYSTEM"


def pytest_collection_modifyitems(session, config, items):
    unmarked = [
        item.nodeid
        for item in items
        if set(SYSTEM_FIXTURES) & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("system")
    ]
    if unmarked:
        raise pytest.UsageError(
            f"these tests start a FLARE system (fixtures {', '.join(SYSTEM_FIXTURES)}) but lack "
            f"@pytest.mark.system: {', '.join(unmarked)}"
        )
    # The table check compares what the scenarios recorded: it must run after all of them.
    items.sort(key=lambda item: "test_reliability_table" in item.nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # FlareSystem.start() refuses to run for a test without the marker (a test that builds
    # its own system, not through the fixtures above).
    os.environ[IS_SYSTEM_TEST_ENV] = "1" if item.get_closest_marker("system") else "0"


def pytest_report_header(config):
    import nvflare

    return f"nvflare under test: {nvflare.__version__} from {Path(nvflare.__file__).parent} (python {sys.version.split()[0]})"
