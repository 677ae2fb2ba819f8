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
"""Every name the fork's own modules use is defined (pyflakes' undefined-name check).

A module move that drops a function-level import leaves a NameError that only the code
path's own system test finds: the console's component completion lost two names that way
when the cycle between the job component commands and the completion was broken. The
other pyflakes messages (unused imports and the like) are style, not correctness, and
are left to review.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def undefined_names(*paths) -> list:
    proc = subprocess.run(
        [sys.executable, "-m", "pyflakes", *map(str, paths)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert "No module named pyflakes" not in proc.stderr, proc.stderr
    return [line for line in proc.stdout.splitlines() if "undefined name" in line]


def test_the_overlay_and_the_tools_use_no_undefined_name():
    assert undefined_names("nvflare", "tools", "bench", "setup.py", "editable_finder.py") == []


def test_the_check_sees_an_undefined_name(tmp_path):
    module = tmp_path / "broken.py"
    module.write_text("def f():\n    return extra_components([])\n")
    assert undefined_names(module) == [f"{module}:2:12: undefined name 'extra_components'"]
