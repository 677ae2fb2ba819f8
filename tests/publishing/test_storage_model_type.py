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
"""Behaviour test of patches/storage-model-data-type-and-a-strict-component-name-rule.patch.

Through upstream's real FilesystemStorage and SimpleJobDefManager: MODEL_ components are
stored, listed and read back; hostile names are refused and nothing lands outside the job.
Without the patch, MODEL_global_model is refused and ERRORLOG_x/../../escaped escapes.
"""

import os

import pytest
from job_components import JobStore

from nvflare.apis.storage import StorageException, StorageSpec
from nvflare.apis.utils.component_names import MAX_COMPONENT_NAME_LENGTH, check_component_name, component_name_problem

JOB_ID = "2f6a1e3c-3b5d-4a0e-9d7b-6c1f0e2a9b11"

HOSTILE = [
    "ERRORLOG_x/../../escaped",  # the upstream escape, confirmed on 2.9.0
    "MODEL_../../escaped",
    "MODEL_x/../../../outside",
    "LOG_a/../../../outside",
    "MODEL_/abs/path",
    "/etc/passwd",
    "../MODEL_global_model",
    "MODEL_a/b",
    "MODEL_a\\b",
    "MODEL_..",
    "MODEL_x..y",
    "MODEL_./x",
    "MODEL_x/",
    "MODEL_",
    "",
    "MODEL_" + "a" * MAX_COMPONENT_NAME_LENGTH,
    "MODEL_x\x00y",
    "MODEL_x\n",
    "MODEL_x\t",
    "MODEL_x y",
    "MODEL_\uff47lobal",  # fullwidth g
    "MODEL_global\u2215model",  # division slash
    "MODEL_global\u2044model",  # fraction slash
    "MODEL_\u202eledom",  # right-to-left override
    "MODEL_global\u200bmodel",  # zero-width space
    "MODEL_$(touch pwned)",
    "MODEL_`id`",
    "MODEL_x;rm -rf ~",
    "MODEL_~",
    "MODEL_%2e%2e%2f",
    "MODEL_C:\\evil",
    "model_global",
    "MODELglobal",
    "SECRET_x",
]


@pytest.fixture
def job_store(tmp_path):
    js = JobStore(tmp_path / "jobs")
    js.create_job_object(JOB_ID)
    return js


def _tree(root):
    """Every file and folder below root, so any write (or mkdir) anywhere shows."""
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files)


def test_model_component_is_stored_listed_and_read_back(job_store):
    payload = os.urandom(4096)
    job_store.manager.set_client_data(JOB_ID, payload, "global_model", "MODEL", job_store.fl_ctx)
    assert "MODEL_global_model" in job_store.manager.list_components(JOB_ID, job_store.fl_ctx)
    assert job_store.manager.get_client_data(JOB_ID, "global_model", "MODEL", job_store.fl_ctx) == payload
    uri = job_store.manager.job_uri(JOB_ID)
    assert job_store.store.get_data(uri, "MODEL_global_model") == payload


def test_model_component_from_a_file_path(job_store, tmp_path):
    src = tmp_path / "FL_global_model.pt"
    src.write_bytes(b"weights" * 1000)
    job_store.manager.set_client_data(JOB_ID, str(src), "best_global_model", "MODEL", job_store.fl_ctx)
    stored = job_store.store.get_data(job_store.manager.job_uri(JOB_ID), "MODEL_best_global_model")
    assert stored == b"weights" * 1000


def test_errorlog_and_log_components_keep_working(job_store):
    job_store.manager.set_client_data(JOB_ID, b"err", "site-1", "ERRORLOG", job_store.fl_ctx)
    job_store.manager.set_client_data(JOB_ID, b"log", "log.txt_site-1", "LOG", job_store.fl_ctx)
    components = job_store.manager.list_components(JOB_ID, job_store.fl_ctx)
    assert {"ERRORLOG_site-1", "LOG_log.txt_site-1"} <= set(components)
    assert job_store.manager.get_client_data(JOB_ID, "site-1", "ERRORLOG", job_store.fl_ctx) == b"err"


@pytest.mark.parametrize("name", HOSTILE, ids=[repr(n)[:40] for n in HOSTILE])
def test_hostile_name_is_refused_and_nothing_is_written(job_store, tmp_path, name):
    before = _tree(tmp_path)
    assert StorageSpec.is_valid_component(name) is False
    uri = job_store.manager.job_uri(JOB_ID)
    with pytest.raises(StorageException) as e:
        job_store.store.update_object(uri, b"evil", name)
    assert str(e.value) == f"{name} is not a valid component for storage object."
    with pytest.raises(StorageException):
        job_store.store.get_data(uri, name)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("suffix", ["x/../../escaped", "../../escaped", "a\x00b", "\u2215etc"])
def test_hostile_client_name_through_the_job_manager(job_store, tmp_path, suffix):
    before = _tree(tmp_path)
    with pytest.raises(StorageException):
        job_store.manager.set_client_data(JOB_ID, b"evil", suffix, "MODEL", job_store.fl_ctx)
    assert _tree(tmp_path) == before
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "jobs" / "escaped").exists()


def test_fixed_components_and_bare_prefixes_stay_valid():
    for name in ("data", "meta", "workspace", "ERRORLOG", "LOG", "MODEL", "LOG_log.txt_site-1", "MODEL_a.b-c_d"):
        assert StorageSpec.is_valid_component(name), name


def test_messages_the_user_sees():
    rule = (
        "a component is data, meta, workspace or <TYPE>_<name> with TYPE one of ERRORLOG, LOG, MODEL "
        "and <name> made of letters, digits, '.', '-' and '_'"
    )
    assert component_name_problem("MODEL_global_model") is None
    assert component_name_problem("SECRET_x") == f"invalid component name 'SECRET_x': {rule}"
    assert component_name_problem("MODEL_a/b") == f"invalid component name 'MODEL_a/b': {rule}, without '..'"
    assert component_name_problem("MODEL_x\x00y") == f"invalid component name 'MODEL_x\\x00y': {rule}, without '..'"
    assert component_name_problem("") == f"component name must be a non-empty string: {rule}"
    assert component_name_problem(None) == f"component name must be a non-empty string: {rule}"
    long_name = "MODEL_" + "a" * 300
    assert component_name_problem(long_name) == "component name is 306 characters long; at most 200 are allowed"
    with pytest.raises(ValueError, match="^invalid component name 'MODEL_..': "):
        check_component_name("MODEL_..")
    assert check_component_name("MODEL_best_global_model") == "MODEL_best_global_model"
