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
"""pip install -e . (PEP 660): overlay edits take effect at once, stale patches fail loudly.

A scratch copy of the repo is installed editable into a fresh venv with pip. nvflare's
third-party dependencies come from this test venv through a .pth entry placed after the
scratch venv's own site-packages, so the editable install is what nvflare resolves to.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest


@pytest.fixture(scope="module")
def editable(repo, tmp_path_factory):
    root = tmp_path_factory.mktemp("editable")
    src = root / "src"
    src.mkdir()
    for name in ("setup.py", "editable_finder.py", "upstream.json", "pyproject.toml"):
        shutil.copy2(repo / name, src / name)
    for folder in ("patches", "nvflare", "tools"):
        shutil.copytree(repo / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_CONSTRAINT")}
    proc = subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-e", str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "setup.py develop" not in proc.stdout + proc.stderr
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    with open(os.path.join(site, "zz_test_dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    return src, py, site


def probe(py, code: str):
    proc = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=300, cwd="/")
    return proc


def loaded(py, *modules) -> dict:
    code = "import importlib, json; print(json.dumps({m: importlib.import_module(m).__file__ for m in %r}))"
    proc = probe(py, code % (list(modules),))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_overlay_comes_from_the_repo_and_patched_files_from_the_install(editable):
    src, py, site = editable
    files = loaded(py, "nvflare", "nvflare.apis.storage", "nvflare.apis.utils.component_names")
    assert files["nvflare"] == os.path.join(site, "nvflare", "__init__.py")
    assert files["nvflare.apis.storage"] == os.path.join(site, "nvflare", "apis", "storage.py")
    assert files["nvflare.apis.utils.component_names"] == str(src / "nvflare" / "apis" / "utils" / "component_names.py")
    proc = probe(
        py,
        "from nvflare.apis.storage import DataTypes; import nvflare; print(DataTypes.MODEL.value, nvflare.__version__)",
    )
    assert proc.stdout.split() == ["MODEL", "2.9.0+model.1"], proc.stderr
    assert not os.path.exists(os.path.join(site, "nvflare", "apis", "utils", "component_names.py"))


def test_overlay_edits_and_new_modules_need_no_reinstall(editable):
    src, py, _ = editable
    names = src / "nvflare" / "apis" / "utils" / "component_names.py"
    names.write_text(names.read_text() + "\nEDITED_IN_THE_REPO = 42\n")
    (src / "nvflare" / "apis" / "utils" / "brand_new_module.py").write_text("ANSWER = 'new'\n")
    proc = probe(
        py,
        "from nvflare.apis.utils.component_names import EDITED_IN_THE_REPO as a; "
        "from nvflare.apis.utils.brand_new_module import ANSWER as b; print(a, b)",
    )
    assert proc.stdout.split() == ["42", "new"], proc.stderr


def test_a_changed_patch_makes_the_install_fail_with_the_fix(editable):
    src, py, _ = editable
    patch = src / "patches" / (src / "patches" / "series").read_text().split()[-1]
    original = patch.read_bytes()
    patch.write_bytes(original.replace(b"\nLast-Update: ", b"\nLast-Update:  ", 1))
    try:
        proc = probe(py, "import nvflare")
        assert proc.returncode == 1
        assert (
            f"StaleEditableInstall: the editable nvflare install is stale: patches/ or upstream.json in {src} changed "
            f"since it was built (patches are applied at build time; overlay edits need no rebuild). "
            f"Run: pip install -e {src}"
        ) in proc.stderr
    finally:
        patch.write_bytes(original)
    assert probe(py, "import nvflare").returncode == 0
