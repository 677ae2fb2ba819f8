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
"""tools/upstream_drift.py's static import check finds vanished and changed upstream names.

Runs on small synthetic trees: an "old" and a "new" upstream and an overlay that imports
from both, so every kind of drift the check reports is produced here on purpose.
"""

import importlib.util
import textwrap

import pytest


@pytest.fixture(scope="module")
def drift(repo):
    spec = importlib.util.spec_from_file_location("upstream_drift", repo / "tools" / "upstream_drift.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_vanished_modules_names_and_changed_parameters(drift, tmp_path):
    old, new, repo = tmp_path / "old", tmp_path / "new", tmp_path / "repo"
    write(old, "nvflare/a/__init__.py", "")
    write(old, "nvflare/a/util.py", "def f(x): ...\ndef g(): ...\nK = 1\nclass C: ...\n")
    write(old, "nvflare/a/gone.py", "X = 1\n")
    write(new, "nvflare/a/__init__.py", "")
    write(new, "nvflare/a/util.py", "def f(x, y): ...\nK = 2\nif True:\n    class C: ...\n")
    write(repo, "nvflare/a/ours.py", "")  # an overlay module: never upstream drift
    write(
        repo,
        "nvflare/a/user.py",
        """
        import nvflare.a.gone
        from nvflare.a.util import C, K, f, g
        from nvflare.a import ours
        from nvflare.a.ours import anything
        """,
    )
    assert drift.import_drift(old, new, repo / "nvflare") == [
        "`nvflare.a.util.f` parameters changed: (x) -> (x, y) (imported by nvflare/a/user.py)",
        "`nvflare.a.util.g` is gone (imported by nvflare/a/user.py)",
        "module `nvflare.a.gone` is gone (imported by nvflare/a/user.py)",
    ]


def test_the_real_overlay_against_its_own_upstream_has_no_drift(drift, repo, upstream_wheel, tmp_path):
    import zipfile

    with zipfile.ZipFile(upstream_wheel) as z:
        z.extractall(tmp_path / "up", [n for n in z.namelist() if n.startswith("nvflare/")])
    assert drift.import_drift(tmp_path / "up", tmp_path / "up", repo / "nvflare") == []
