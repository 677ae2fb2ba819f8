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
"""Hostile job ids and component names through fl_admin, the FLARE API and raw server
commands (which skip every client-side check): each is refused with the message the
user sees, the server keeps running, and nothing outside the job's store folder is read
or written.

"Nothing read": another job's files get an access time older than their modification
time, which the kernel updates on the next read (relatime, the Linux default); they must
keep it. "Nothing written": every file of the system keeps its size and mtime, except the
logs and the console's command history.
"""

import os
import time
from pathlib import Path

import pytest
from admin_console import AdminConsole
from downloads import wait_until
from job_components import write_numpy_job

from nvflare.apis.utils.component_names import component_name_problem
from nvflare.fuel.flare_api.api_spec import InternalError, InvalidArgumentError, JobNotFound
from nvflare.fuel.hci.cmd_arg_utils import join_args

pytestmark = pytest.mark.system

LOOK_ALIKE = str.maketrans({"a": "\u0430", "e": "\u0435", "c": "\u0441"})  # Cyrillic а, е, с


def hostile_job_ids(job_id: str) -> list:
    return [
        "../../etc",
        "/etc/passwd",
        "a/b",
        "a\\b",
        f"{job_id}\x00",
        "x" * 5000,
        "$(id)",
        ";ls",
        "`id`",
        "|cat",
        "\uff4a\uff4f\uff42",  # fullwidth "job"
        job_id.translate(LOOK_ALIKE),
        "workspace",
        "meta",
        "data",
        "..",
        ".",
        f"{job_id}/../{job_id}",
        "*",
        "%2e%2e%2f",
        "\u2215etc\u2215passwd",
    ]


def hostile_components(other_job: str) -> list:
    return [
        "../meta",
        "MODEL_../../x",
        "MODEL_x/../../meta",
        "/etc/passwd",
        "MODEL_a/b",
        "MODEL_a\\b",
        "MODEL_x\x00y",
        "MODEL_" + "a" * 300,
        "MODEL_$(id)",
        "MODEL_;ls",
        "MODEL_`id`",
        "MODEL_a|b",
        "\u039cODEL_global_model",  # Greek capital Mu
        "MODEL_\uff47lobal_model",
        "MODEL_global\u2215model",
        "MODEL_global_model\u200b",
        "workspace",
        "meta",
        "data",
        "scheduled",
        "MODEL_..",
        "MODEL_global_model/",
        "MODEL_*",
        "LOG_../../../../etc/passwd",
        "model_global_model",
        f"MODEL_x/../../{other_job}/MODEL_global_model",
    ]


def component_refusal(name: str) -> str:
    """What the server answers (and the clients print) for a refused component name."""
    if name in ("workspace", "meta", "data"):
        return f"component {name!r} is part of every job: download it with download_job"
    problem = component_name_problem(name)
    assert problem, f"{name!r} is not hostile"
    return problem


def typeable(text: str) -> bool:
    """Can be typed as one console argument (no NUL, no whitespace, fits a terminal line)."""
    return "\x00" not in text and not any(c.isspace() for c in text) and len(text) < 1000


def snapshot(root: Path, skip) -> dict:
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if not skip(path):
                st = path.lstat()
                files[str(path)] = (st.st_size, st.st_mtime_ns)
    return files


def atime_is_tracked(tmp_path) -> bool:
    probe = tmp_path / "atime-probe"
    probe.write_bytes(b"x")
    os.utime(probe, (time.time() - 3600, time.time()))
    before = probe.stat().st_atime
    probe.read_bytes()
    return probe.stat().st_atime != before


@pytest.fixture
def other_job(fault_system, tmp_path):
    """A second job whose store files must never be read by requests about the first."""
    job_id, _ = fault_system.submit_and_wait(write_numpy_job(tmp_path / "other", n_clients=1))
    return job_id


def test_hostile_input_is_refused(fault_system, big_job, other_job, tmp_path, reliability):
    system = fault_system
    if not atime_is_tracked(tmp_path):
        pytest.skip("this file system does not update access times: cannot show that nothing was read")
    job_ids, components = hostile_job_ids(big_job), hostile_components(other_job)
    assert len(job_ids) + len(components) >= 30
    watched = list(system.job_store_dir(other_job).iterdir())
    for path in watched:
        os.utime(path, (time.time() - 3600, path.stat().st_mtime))
    atimes = {p: p.stat().st_atime for p in watched}
    server_pid = system.server_parent().pid

    def is_log(path: Path) -> bool:
        """The server's logs and the console's command history: written by design."""
        if path.name == ".admin_cli_history":
            return True
        return path.suffix in (".log", ".txt", ".json") and "startup" not in path.parts and "local" not in path.parts

    before = snapshot(system.root, is_log)
    dest = tmp_path / "dl"
    refused_in_audit = system.audit_log.read_text().count(" REFUSED: ")

    with system.session() as sess:
        for job_id in job_ids:
            with pytest.raises(JobNotFound) as e:
                sess.download_job_component(job_id, "MODEL_global_model", str(dest))
            assert str(e.value) == f"no such job: {job_id}"
            with pytest.raises(JobNotFound):
                sess.list_job_component_info(job_id)
            raw = sess.api.server_execute(join_args(["download_job_component", job_id, "MODEL_global_model"]))
            assert raw["meta"] == {"status": "invalid_job_id", "info": job_id}, (job_id, raw)
        for name in components:
            expected_type = InternalError if name in ("workspace", "meta", "data") else InvalidArgumentError
            with pytest.raises(expected_type) as e:
                sess.download_job_component(big_job, name, str(dest))
            assert str(e.value).endswith(component_refusal(name)), (name, str(e.value))
            raw = sess.api.server_execute(join_args(["download_job_component", big_job, name]))
            assert raw["meta"]["status"] == "syntax_error" and raw["meta"]["info"] == component_refusal(name), (
                name,
                raw,
            )

    console_cases = {
        f"download_job_component {j} MODEL_global_model": f"Error: invalid job_id {j}" for j in job_ids if typeable(j)
    }
    for name in filter(typeable, components):
        shown = component_refusal(name)
        console_cases[f"download_job_component {big_job} {name}"] = (
            f"Error: {shown}" if name in ("workspace", "meta", "data") else shown
        )
    with AdminConsole(system.kit(), env=system.env) as console:
        for command, message in console_cases.items():
            out = console.run(command)
            # The terminal's echo of non-ASCII input is not the command as typed: match whole lines.
            assert message in out.split("\n"), (command, out)
        assert "downloaded" in console.run(f"download_job_component {big_job} MODEL_global_model {dest}")

    wait_until(lambda: not system.transfer_transactions(), timeout=30)  # the good download's folder
    assert system.server_parent().pid == server_pid  # still the same server, still serving (above)
    assert sorted(os.listdir(dest)) == ["MODEL_global_model.npz", "MODEL_global_model.npz.provenance.json"]
    assert {p: p.stat().st_atime for p in watched} == atimes, "a hostile request read another job's files"
    after = snapshot(system.root, is_log)
    assert after == before, {
        k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)
    }
    refused_now = system.audit_log.read_text().count(" REFUSED: ")
    assert refused_now - refused_in_audit >= 3 * len(job_ids)  # API download + listing + raw, each audited
    reliability.record(
        "9",
        f"{len(job_ids)} job ids and {len(components)} component names, each through the FLARE API, raw server "
        "commands and (where typeable) fl_admin: every one refused with the name rule's message, `no such job` / "
        "`invalid job_id` or `part of every job`; server pid unchanged; no file of the system written, no file of "
        "another job read; every refusal of a job id in the audit log",
    )
