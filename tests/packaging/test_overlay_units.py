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
"""Pure logic of overlay modules, without a FLARE system (the fast lane).

The system tests prove these paths end to end; these pin their edge cases, which a
running system rarely reaches: which job configs get the publisher injected, and which
cells the model store accepts as a job's own server process.
"""

import hashlib
import json

import pytest

from nvflare.app_common.model_publishing.model_publish_defs import Key
from nvflare.app_common.model_publishing.model_publisher_injection import (
    INJECTED_ID,
    PUBLISHER_PATH,
    Outcome,
    configures_publisher,
    inject_publisher,
)
from nvflare.app_common.widgets.job_model_store import JobModelStore, _Refused, _senders_hash
from nvflare.fuel.f3.message import Message
from nvflare.private.defs import AUTH_CLIENT_NAME_FOR_SJ, CellMessageHeaderKeys

JOB = "2f6a1e3c-3b5d-4a0e-9d7b-6c1f0e2a9b11"

# --------------------------------------------------------------------------------------
# model_publisher_injection
# --------------------------------------------------------------------------------------


def write_config(tmp_path, components) -> str:
    path = tmp_path / "config_fed_server.json"
    path.write_text(json.dumps({"format_version": 2, "workflows": [], "components": components}))
    return str(path)


def test_injects_the_publisher_into_a_job_without_one(tmp_path):
    other = {"id": "persistor", "path": "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor"}
    path = write_config(tmp_path, [other])
    assert inject_publisher(path) == Outcome.INJECTED
    config = json.loads(open(path).read())
    assert config["components"] == [other, {"id": INJECTED_ID, "path": PUBLISHER_PATH, "args": {}}]
    assert config["format_version"] == 2 and config["workflows"] == []
    assert [p.name for p in tmp_path.iterdir()] == ["config_fed_server.json"], "no temp file left behind"


def test_a_job_that_configures_the_publisher_is_left_alone(tmp_path):
    for component in (
        {"id": "mine", "path": PUBLISHER_PATH, "args": {"enabled": False}},
        {"id": "mine", "name": "ModelPublisher", "args": {}},  # upstream's class-name form
    ):
        path = write_config(tmp_path, [component])
        before = open(path).read()
        assert inject_publisher(path) == Outcome.CONFIGURED
        assert open(path).read() == before


def test_the_injected_id_never_clashes(tmp_path):
    path = write_config(tmp_path, [{"id": INJECTED_ID, "path": "x.Y"}, {"id": INJECTED_ID + "_", "path": "x.Z"}])
    assert inject_publisher(path) == Outcome.INJECTED
    ids = [c["id"] for c in json.loads(open(path).read())["components"]]
    assert ids == [INJECTED_ID, INJECTED_ID + "_", INJECTED_ID + "__"]


def test_a_job_without_a_json_server_config(tmp_path):
    assert inject_publisher(str(tmp_path / "config_fed_server.json")) == Outcome.NO_JSON_CONFIG
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "component, expected",
    [
        ({"path": "my.pkg.ModelPublisher"}, True),  # a subclass-free re-export keeps the class name
        ({"path": "nvflare.app_common.widgets.model_publisher.ModelPublisherX"}, False),
        ({"path": "ModelPublisherHelper"}, False),
        ({"id": "model_publisher"}, False),  # the id alone says nothing
        ("nvflare.app_common.widgets.model_publisher.ModelPublisher", False),  # not a component dict
        (None, False),
    ],
)
def test_what_counts_as_configuring_the_publisher(component, expected):
    assert configures_publisher(component) is expected


# --------------------------------------------------------------------------------------
# job_model_store: who may publish, and the sender's hash
# --------------------------------------------------------------------------------------


def request(client: str, token: str) -> Message:
    return Message(headers={CellMessageHeaderKeys.CLIENT_NAME: client, CellMessageHeaderKeys.TOKEN: token})


def test_the_jobs_own_server_process_may_publish():
    assert JobModelStore._sender_job(request(AUTH_CLIENT_NAME_FOR_SJ, JOB), f"server.{JOB}") == JOB


@pytest.mark.parametrize(
    "client, token, origin, shown",
    [
        ("site-1", JOB, f"site-1.{JOB}", f"'site-1.{JOB}' (authenticated as 'site-1')"),  # a client's job cell
        (
            AUTH_CLIENT_NAME_FOR_SJ,
            "other-job",
            f"server.{JOB}",
            f"'server.{JOB}' (authenticated as '{AUTH_CLIENT_NAME_FOR_SJ}')",
        ),
        ("site-1", JOB, f"server.{JOB}", f"'server.{JOB}' (authenticated as 'site-1')"),  # spoofed origin
        (AUTH_CLIENT_NAME_FOR_SJ, "server", "server", f"'server' (authenticated as '{AUTH_CLIENT_NAME_FOR_SJ}')"),
        (
            AUTH_CLIENT_NAME_FOR_SJ,
            JOB,
            f"server.{JOB}.x",
            f"'server.{JOB}.x' (authenticated as '{AUTH_CLIENT_NAME_FOR_SJ}')",
        ),
        ("", "", "", "'' (authenticated as '')"),
    ],
)
def test_anyone_else_is_refused_with_the_reason(client, token, origin, shown):
    with pytest.raises(_Refused) as refused:
        JobModelStore._sender_job(request(client, token), origin)
    assert str(refused.value) == (
        f"request from cell {shown}: only a job's own server process may publish models into its job store"
    )


SHA = hashlib.sha256(b"weights").hexdigest()


@pytest.mark.parametrize(
    "payload, expected",
    [
        ({Key.SHA256: SHA, Key.SIZE: 7, Key.IDENTITY: [1, 2, 7, 0.0, 0.0]}, (SHA, 7)),
        ({Key.SHA256: SHA.upper(), Key.SIZE: 7, Key.IDENTITY: [1, 2, 7]}, None),  # not lowercase hex
        ({Key.SHA256: SHA[:-1], Key.SIZE: 7, Key.IDENTITY: [1, 2, 7]}, None),
        ({Key.SHA256: SHA, Key.SIZE: 8, Key.IDENTITY: [1, 2, 7]}, None),  # size is not the file's
        ({Key.SHA256: SHA, Key.SIZE: True, Key.IDENTITY: [1, 2, True]}, None),  # a bool is no size
        ({Key.SHA256: SHA, Key.SIZE: 7, Key.IDENTITY: [1, 2]}, None),
        ({Key.SHA256: SHA, Key.SIZE: 7, Key.IDENTITY: "1,2,7"}, None),
        ({Key.SIZE: 7, Key.IDENTITY: [1, 2, 7]}, None),
    ],
)
def test_the_senders_hash_is_used_only_when_well_formed(payload, expected):
    assert _senders_hash(payload) == expected
