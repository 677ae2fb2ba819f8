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
"""``nvflare fork enable <server kit>`` on kits provisioned by real upstream NVFlare 2.9.0.

Behaviour test for cli-nvflare-fork-enable.patch: without it ``nvflare fork`` is an
unknown command and every test here that runs the CLI fails.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from upstream_flare import upstream_kits, upstream_nvflare

NVFLARE = str(Path(sys.executable).parent / "nvflare")
STORE = {"id": "job_model_store", "path": "nvflare.app_common.widgets.job_model_store.JobModelStore"}
PUBLISHER = "nvflare.app_common.widgets.model_publisher.ModelPublisher"


@pytest.fixture(scope="module")
def upstream_prod(upstream_wheel, tmp_path_factory):
    """Kits provisioned by upstream 2.9.0 (server, site-1, admin), never touched by the fork."""
    return upstream_kits(upstream_nvflare(upstream_wheel), tmp_path_factory.mktemp("upstream"))


@pytest.fixture
def server_kit(upstream_prod, tmp_path):
    kit = tmp_path / "server"
    shutil.copytree(upstream_prod / "server", kit, symlinks=True)
    return kit


def enable(kit, *extra):
    return subprocess.run([NVFLARE, "fork", "enable", str(kit), *extra], capture_output=True, text=True, timeout=120)


def test_upstream_kit_is_what_the_issue_describes(upstream_prod):
    local = upstream_prod / "server" / "local"
    assert (local / "resources.json.default").is_file() and not (local / "resources.json").exists()
    default = json.loads((local / "resources.json.default").read_text())
    assert PUBLISHER not in default["class_allow_list"]
    assert STORE["path"] not in json.dumps(default)


def test_enable_copies_the_default_adds_two_entries_keeps_the_rest(server_kit):
    local = server_kit / "local"
    default_text = (local / "resources.json.default").read_text()
    done = enable(server_kit)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{local / 'resources.json'}: changed:",
        "  - created local/resources.json from local/resources.json.default",
        f"  - added component job_model_store ({STORE['path']})",
        f"  - added {PUBLISHER} to class_allow_list",
        "restart the server for the change to take effect",
    ]
    expected = json.loads(default_text)
    expected["components"].append(STORE)
    expected["class_allow_list"].append(PUBLISHER)
    assert json.loads((local / "resources.json").read_text()) == expected
    assert (local / "resources.json.default").read_text() == default_text

    before = (local / "resources.json").read_bytes()
    again = enable(server_kit)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"{local / 'resources.json'}: model publishing is already enabled; nothing changed"
    assert (local / "resources.json").read_bytes() == before


def test_existing_resources_json_keeps_the_operators_settings(server_kit):
    local = server_kit / "local"
    config = json.loads((local / "resources.json.default").read_text())
    config["admin_download_timeout"] = 900
    config["components"].insert(0, {"id": "my_widget", "path": "my.org.Widget", "args": {"x": [1, 2]}})
    del config["class_allow_list"]  # a site that relies on the built-in allow list
    (local / "resources.json").write_text(json.dumps(config))
    done = enable(server_kit)
    assert done.returncode == 0, done.stderr
    assert "created local/resources.json" not in done.stdout and "class_allow_list" not in done.stdout
    assert json.loads((local / "resources.json").read_text()) == {
        **config,
        "components": config["components"] + [STORE],
    }


def test_dry_run_changes_nothing(server_kit):
    done = enable(server_kit, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].endswith("resources.json: would change:")
    assert not (server_kit / "local" / "resources.json").exists()


# The issue's own failure: the documented line pasted as the last list item (ends in "},").
PASTED = """{
    "format_version": 2,
    "components": [
        {"id": "job_manager", "path": "nvflare.apis.impl.job_def_manager.SimpleJobDefManager"},
        {"id": "job_model_store", "path": "nvflare.app_common.widgets.job_model_store.JobModelStore"},
    ]
}
"""


@pytest.mark.parametrize(
    "text, reason",
    [
        (
            PASTED,
            "is not valid JSON (Expecting value: line 6 column 5 (char 250)); fix it (or start again from "
            "resources.json.default)",
        ),
        ("[1, 2]", "is not a JSON object but a list: not a FLARE resources file"),
        ('{"components": {"a": 1}}', ': "components" is not a list of objects, as a FLARE server expects'),
        ('{"components": [], "class_allow_list": "x.Y"}', ': "class_allow_list" is not a list of class paths'),
        (
            '{"components": [{"id": "job_model_store", "path": "my.Store"}]}',
            ": component id 'job_model_store' is already used by 'my.Store'; rename that component, then run this again",
        ),
    ],
)
def test_unexpected_files_refused_untouched(server_kit, text, reason):
    path = server_kit / "local" / "resources.json"
    path.write_text(text)
    done = enable(server_kit)
    assert done.returncode == 1
    sep = " " if reason.startswith("is") else ""
    assert done.stderr.strip() == f"nothing changed: {path}{sep}{reason}"
    assert path.read_text() == text


def test_kits_that_are_not_a_server_kit_refused(upstream_prod, tmp_path):
    client = enable(upstream_prod / "site-1")
    assert client.returncode == 1
    assert client.stderr.strip() == (
        f"nothing changed: {upstream_prod / 'site-1'} is a client kit (startup/fed_client.json): clients need no "
        "change for model publishing (it runs in the server's job process); give the server's kit"
    )
    admin = enable(upstream_prod / "admin@nvidia.com")
    assert admin.stderr.strip().endswith("is an admin kit (startup/fed_admin.json): give the server's kit")
    other = enable(tmp_path)
    assert (
        other.stderr.strip()
        == f"nothing changed: {tmp_path} is not a FLARE server kit: it has no startup/fed_server.json"
    )
    assert not list((upstream_prod / "site-1" / "local").glob("resources.json"))


def test_module_form_without_the_cli(server_kit):
    done = subprocess.run(
        [sys.executable, "-m", "nvflare.tool.fork.fork_cli", "enable", str(server_kit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (server_kit / "local" / "resources.json").is_file()
