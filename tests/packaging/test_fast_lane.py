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
"""The fast lane (tools/fast.sh, pytest -m "not system") can never start a FLARE system.

tests/conftest.py refuses to collect a test that uses a system fixture without
@pytest.mark.system, and FlareSystem.start() refuses to run inside an unmarked test (a
test that builds its own system). Both are driven here on a scratch test folder that
carries the real conftest.
"""

import shutil
import subprocess
import sys
import textwrap

import pytest


@pytest.fixture
def scratch(repo, tmp_path):
    shutil.copy2(repo / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\n"
        f"pythonpath = {repo / 'tests' / 'support'}\n"
        "markers =\n    system: starts a real local FLARE system\n"
    )
    return tmp_path


def run_pytest(folder, *args):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unmarked_test_using_the_system_fixture_is_refused(scratch):
    (scratch / "test_x.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def job(flare_system):
                return 1

            def test_indirect(job):
                pass

            @pytest.mark.system
            def test_marked(flare_system):
                pass

            def test_plain():
                pass
            """
        )
    )
    proc = run_pytest(scratch, "-m", "not system", "--collect-only", "-q")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert (
        "ERROR: these tests start a FLARE system (fixtures flare_system, fault_system) but lack "
        "@pytest.mark.system: test_x.py::test_indirect"
    ) in proc.stdout + proc.stderr


def test_an_unmarked_test_that_starts_its_own_system_fails_before_starting_it(scratch):
    (scratch / "test_y.py").write_text(
        textwrap.dedent(
            """
            from flare_system import FlareSystem

            def test_own_system(tmp_path):
                FlareSystem(tmp_path).start()
            """
        )
    )
    proc = run_pytest(scratch, "-q")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "RuntimeError: a test that starts a FLARE system must be marked @pytest.mark.system" in proc.stdout
