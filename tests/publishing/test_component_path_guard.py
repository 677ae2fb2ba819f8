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
"""Every component a job configures, not only persistors, is held to the job path rule, on the server and the clients.

Behaviour test of patches/job-processes-refuse-components-configured-to-open-files-outside-the-job.patch
(upstream's authorize_build_component, and upstream's JSON configurator calling it, refuse
before anything is built) and unit tests of component_paths / site_zones /
persistor_path_guard, with real upstream classes on a real workspace layout on disk.
The system tests (test_component_path_guard_system.py) run the same in real job processes.
"""

import argparse
import json
import os

import numpy as np
import pytest

from nvflare.apis.fl_constant import FLContextKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.workspace import Workspace
from nvflare.app_common.path_guard import persistor_path_guard as guard
from nvflare.app_common.path_guard.component_paths import configured_paths
from nvflare.app_common.path_guard.persistor_paths import READ, WRITE, JobFolders, PersistorPath
from nvflare.app_common.path_guard.site_zones import JOB_STORE, WORKSPACE, site_zones

JOB = "4c1f7e0a-attacker"
VICTIM = "77d0c0de-victim"
LOCATOR = "nvflare.app_common.np.np_model_locator.NPModelLocator"
CSE = "nvflare.app_common.workflows.cross_site_model_eval.CrossSiteModelEval"
NP_FILE_PERSISTOR = "nvflare.app_common.ccwf.comps.np_file_model_persistor.NPFileModelPersistor"
PSI_WRITER = "nvflare.app_common.psi.file_psi_writer.FilePSIWriter"
LOG_RECEIVER = "nvflare.app_common.logging.job_log_receiver.JobLogReceiver"


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A server workspace (startup/, local/, a victim's and the attacker's run folders), a job store with the
    victim's stored model, and the operator's allowed folder with a pretrained model; cwd = the workspace root."""
    for key in (guard.ALLOWED_DIRS, guard.READ_ALLOWED_DIRS):
        monkeypatch.delenv(guard.env_var_name(key), raising=False)
    root = tmp_path / "server"
    for d in (
        "startup",
        "local",
        f"{VICTIM}/app_server/models",
        f"{JOB}/app_server/config",
        f"{JOB}/app_server/custom",
    ):
        (root / d).mkdir(parents=True)
    (root / "startup" / "server.key").write_bytes(b"KEY")
    (root / "audit.log").write_text("")
    store = tmp_path / "jobs-storage"
    (store / VICTIM).mkdir(parents=True)
    np.save(store / VICTIM / "MODEL_global_model.npy", np.arange(9, dtype=np.float32))
    allowed = tmp_path / "pretrained"
    allowed.mkdir()
    np.save(allowed / "init.npy", np.ones(3, dtype=np.float32))
    monkeypatch.chdir(root)
    return root


def folders(root, site_name="server") -> JobFolders:
    run = os.path.realpath(root / JOB)
    app = os.path.join(run, f"app_{site_name}")
    return JobFolders(run, app, run, os.path.join(app, "config", "environment.json"), os.path.realpath(root))


def store_model(root) -> str:
    return os.path.realpath(root.parent / "jobs-storage" / VICTIM / "MODEL_global_model.npy")


def context(root, config: dict, client: str = None, resources: dict = None) -> FLContext:
    fl_ctx = FLContext()
    site_name = client or "server"
    fl_ctx.set_prop(FLContextKey.WORKSPACE_OBJECT, Workspace(str(root), site_name), private=True)
    fl_ctx.set_prop(FLContextKey.CURRENT_JOB_ID, JOB, private=False)
    fl_ctx.set_prop(FLContextKey.APP_ROOT, str(root / JOB / f"app_{site_name}"), private=True)
    fl_ctx.set_prop(FLContextKey.ARGS, argparse.Namespace(env=os.path.join("config", "environment.json")))
    if client:
        fl_ctx.set_prop(FLContextKey.CLIENT_NAME, client, private=False)
    fl_ctx.set_prop(FLContextKey.COMPONENT_CONFIG, config, private=True, sticky=False)
    fl_ctx.set_prop(FLContextKey.COMPONENT_NODE, None, private=True, sticky=False)
    return fl_ctx


def run_folder(root) -> str:
    return os.path.realpath(root / JOB)


def test_locator_aimed_at_another_jobs_stored_model_is_refused_with_the_exact_message(site):
    target = store_model(site)
    config = {"id": "locator", "path": LOCATOR, "args": {"model_name": target}}
    assert guard.check_component(context(site, config)) == [
        f"refused model locator 'locator' (NPModelLocator): model_name {target!r} (read) resolves to {target!r}, "
        f"outside the job's run folder {run_folder(site)!r}: {guard.RULE}"
    ]


def test_locator_reads_from_an_allowed_folder_but_never_the_job_store_through_one(site, monkeypatch):
    allowed = os.path.realpath(site.parent / "pretrained")
    config = {"id": "locator", "path": LOCATOR, "args": {"model_name": {"server": f"{allowed}/init.npy"}}}
    monkeypatch.setenv(guard.env_var_name(guard.READ_ALLOWED_DIRS), json.dumps([allowed]))
    assert guard.check_component(context(site, config)) == []

    # an operator who allowed the folder holding the job store still does not open the store
    broad = os.path.realpath(site.parent)
    monkeypatch.setenv(guard.env_var_name(guard.READ_ALLOWED_DIRS), json.dumps([broad]))
    resources = {"components": [{"id": "job_manager", "args": {"uri_root": str(site.parent / "jobs-storage")}}]}
    zones = site_zones(Workspace(str(site), "server"), JOB, run_folder(site), resources)
    target = store_model(site)
    p = PersistorPath("model_name", target, target, READ)
    store = os.path.realpath(site.parent / "jobs-storage")
    assert guard.refusals([p], run_folder(site), (broad,), zones) == [
        f"model_name {target!r} (read) resolves to {target!r}, inside {JOB_STORE} {store!r}, which no allowed "
        "directory opens"
    ]
    # ... nor another job's run folder, nor startup/
    key = os.path.realpath(site / "startup" / "server.key")
    other = os.path.realpath(site / VICTIM / "app_server" / "models")
    assert guard.refusals(
        [PersistorPath("a", key, key, READ), PersistorPath("b", other, other, READ)], run_folder(site), (broad,), zones
    ) == [
        f"a {key!r} (read) resolves to {key!r}, inside {WORKSPACE} {os.path.realpath(site)!r}, which no allowed "
        "directory opens",
        f"b {other!r} (read) resolves to {other!r}, inside {WORKSPACE} {os.path.realpath(site)!r}, which no allowed "
        "directory opens",
    ]


def test_locator_relative_names_are_joined_onto_the_run_folders_model_dir(site):
    f = folders(site)
    paths = configured_paths(
        __import__("nvflare.app_common.np.np_model_locator", fromlist=["x"]).NPModelLocator,
        {"model_dir": "models", "model_name": {"server": "server.npy", "best": "../../" + VICTIM + "/best.npy"}},
        f,
    )
    assert [(p.setting, p.value, p.path, p.access) for p in paths] == [
        ("model_dir/model_name.server", "models/server.npy", os.path.join(f.run_dir, "models", "server.npy"), READ),
        (
            "model_dir/model_name.best",
            f"models/../../{VICTIM}/best.npy",
            os.path.join(f.run_dir, "models", "..", "..", VICTIM, "best.npy"),
            READ,
        ),
    ]
    victim = os.path.realpath(site / VICTIM / "best.npy")
    assert guard.refusals(paths, f.run_dir, ()) == [
        f"model_dir/model_name.best 'models/../../{VICTIM}/best.npy' (read) resolves to {victim!r}, outside the "
        f"job's run folder {f.run_dir!r}"
    ]


def test_any_allow_listed_component_gets_the_general_rule(site):
    """CrossSiteModelEval's result folder, JobLogReceiver's dest_dir: absolute, .., ~ and $VAR values."""
    run = run_folder(site)
    home = os.path.expanduser("~")
    cases = {
        "/tmp/elsewhere": ("/tmp/elsewhere", "/tmp/elsewhere"),
        "../../startup": ("../../startup", os.path.realpath(site.parent / "startup")),
    }
    for value, (shown, real) in cases.items():
        config = {"id": "cse", "path": CSE, "args": {"cross_val_dir": value}}
        assert guard.check_component(context(site, config)) == [
            f"refused component 'cse' (CrossSiteModelEval): cross_val_dir {shown!r} (write) resolves to "
            f"{os.path.realpath(real)!r}, outside the job's run folder {run!r}: {guard.RULE}"
        ]
    config = {"id": "logs", "path": LOG_RECEIVER, "args": {"dest_dir": "$HOME/flare-logs"}}
    expanded = os.path.realpath(os.path.join(home, "flare-logs"))
    assert guard.check_component(context(site, config)) == [
        f"refused component 'logs' (JobLogReceiver): dest_dir '$HOME/flare-logs' (write) resolves to {expanded!r}, "
        f"outside the job's run folder {run!r}: {guard.RULE}"
    ]
    fine = {"id": "cse", "path": CSE, "args": {"cross_val_dir": "cross_site_val", "submit_model_timeout": 60}}
    assert guard.check_component(context(site, fine)) == []


def test_general_rule_values_uris_secret_files_and_nested_components(site):
    f = folders(site)

    class Receiver:
        def __init__(self, tracking_uri=None, extra=None, child=None):
            pass

    key = os.path.realpath(site / "startup" / "server.key")
    args = {
        "tracking_uri": f"sqlite:///{site}/startup/mlflow.db",
        "extra": {"note": f"${{secret:file:{key}}}", "urls": ["https://mlflow.example/api", "file:///etc/x"]},
        "child": {"path": "some.Component", "args": {"file_name": "/etc/passwd"}},  # checked on its own
    }
    paths = configured_paths(Receiver, args, f)
    assert {(p.setting, p.path, p.access) for p in paths if not p.path.startswith(f.run_dir)} == {
        ("tracking_uri", f"{site}/startup/mlflow.db", WRITE),
        ("extra.note", key, READ),
        ("extra.urls[1]", "/etc/x", WRITE),
    }
    db = os.path.realpath(site / "startup" / "mlflow.db")
    assert guard.refusals(paths, f.run_dir, ()) == [
        f"tracking_uri 'sqlite:///{site}/startup/mlflow.db' (write) resolves to {db!r}, outside the job's run "
        f"folder {f.run_dir!r}",
        f"extra.note '${{secret:file:{key}}}' (read) resolves to {key!r}, outside the job's run folder {f.run_dir!r}",
        f"extra.urls[1] 'file:///etc/x' (write) resolves to '/etc/x', outside the job's run folder {f.run_dir!r}",
    ]


def test_a_plain_name_may_not_reach_the_sites_protected_folders_from_the_working_directory(site):
    """Job processes run in the workspace root: a component that opens a name as given reaches startup/."""
    config = {"id": "writer", "path": PSI_WRITER, "args": {"output_path": "startup/server.key"}}
    key = os.path.realpath(site / "startup" / "server.key")
    assert guard.check_component(context(site, config)) == [
        f"refused component 'writer' (FilePSIWriter): output_path 'startup/server.key' (write) resolves to {key!r}, "
        f"inside {WORKSPACE} {os.path.realpath(site)!r}, outside the job's run folder {run_folder(site)!r}: "
        f"{guard.SITE_RULE}"
    ]
    fine = {"id": "writer", "path": PSI_WRITER, "args": {"output_path": "psi/intersection.txt"}}
    assert guard.check_component(context(site, fine)) == []


def test_a_symlink_in_the_run_folder_that_leads_out_is_refused(site):
    os.symlink(str(site / "startup"), str(site / JOB / "app_server" / "results"))
    config = {"id": "cse", "path": CSE, "args": {"cross_val_dir": "app_server/results"}}
    startup = os.path.realpath(site / "startup")
    assert guard.check_component(context(site, config)) == [
        f"refused component 'cse' (CrossSiteModelEval): cross_val_dir 'app_server/results' (write) resolves to "
        f"{startup!r}, outside the job's run folder {run_folder(site)!r}: {guard.RULE}"
    ]


def test_client_persistors_are_confined_other_client_components_only_kept_out_of_the_workspace(tmp_path, monkeypatch):
    for key in (guard.ALLOWED_DIRS, guard.READ_ALLOWED_DIRS):
        monkeypatch.delenv(guard.env_var_name(key), raising=False)
    root = tmp_path / "site-1"
    for d in ("startup", "local", f"{VICTIM}/models", f"{JOB}/app_site-1/config"):
        (root / d).mkdir(parents=True)
    (root / "startup" / "client.key").write_bytes(b"KEY")
    np.save(root / VICTIM / "models" / "best_global_model.npy", np.arange(3))
    monkeypatch.chdir(root)
    run = os.path.realpath(root / JOB)
    victim = os.path.realpath(root / VICTIM / "models" / "best_global_model.npy")
    data = tmp_path / "data" / "site-1"
    data.mkdir(parents=True)

    persistor = {"id": "persistor", "path": NP_FILE_PERSISTOR, "args": {"source_ckpt_file_full_name": victim}}
    assert guard.check_component(context(root, persistor, client="site-1")) == [
        f"refused persistor 'persistor' (NPFileModelPersistor): source_ckpt_file_full_name {victim!r} (read) "
        f"resolves to {victim!r}, outside the job's run folder {run!r}: {guard.RULE}"
    ]
    writer = {"id": "w", "path": PSI_WRITER, "args": {"output_path": str(data / "out.txt")}}
    assert guard.check_component(context(root, writer, client="site-1")) == []  # the site's data folder
    key = os.path.realpath(root / "startup" / "client.key")
    writer["args"]["output_path"] = key
    assert guard.check_component(context(root, writer, client="site-1")) == [
        f"refused component 'w' (FilePSIWriter): output_path {key!r} (write) resolves to {key!r}, inside "
        f"{WORKSPACE} {os.path.realpath(root)!r}, outside the job's run folder {run!r}: {guard.SITE_RULE}"
    ]
    # the same writer config at the server: confined
    server = tmp_path / "server"
    for d in ("startup", "local", f"{JOB}/app_server"):
        (server / d).mkdir(parents=True)
    writer["args"]["output_path"] = str(data / "out.txt")
    assert guard.check_component(context(server, writer)) == [
        f"refused component 'w' (FilePSIWriter): output_path {str(data / 'out.txt')!r} (write) resolves to "
        f"{os.path.realpath(data / 'out.txt')!r}, outside the job's run folder {os.path.realpath(server / JOB)!r}: "
        f"{guard.RULE}"
    ]


def test_a_jobs_own_classes_get_no_general_rule(site):
    """BYOC code can open any file itself: its arguments prove nothing (its upstream bases' rules still apply)."""
    custom = site / JOB / "app_server" / "custom"
    (custom / "my_comp.py").write_text(
        "from nvflare.apis.fl_component import FLComponent\n\n"
        "class MyComp(FLComponent):\n    def __init__(self, data_file=None):\n        super().__init__()\n"
    )
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("my_comp", custom / "my_comp.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["my_comp"] = module  # as the job process imports it from the app's custom folder
    try:
        spec.loader.exec_module(module)
        assert configured_paths(module.MyComp, {"data_file": "/datasets/x.csv"}, folders(site)) == []
    finally:
        del sys.modules["my_comp"]


def test_hook_refuses_before_build_logs_and_audits(site, caplog):
    """The patched upstream authorize_build_component: refused with the exact line, audited in the job's audit file."""
    from nvflare.fuel.sec.audit import AuditService
    from nvflare.fuel.utils.wfconf import ConfigContext
    from nvflare.private.fed.utils.fed_utils import authorize_build_component

    (site / JOB / "meta.json").write_text(json.dumps({"submitter_name": "lead@other.org"}))
    audit = site / JOB / "audit.log"
    AuditService.close()
    AuditService.initialize(str(audit))
    try:
        fl_ctx = context(site, {})
        target = store_model(site)
        config = {"id": "locator", "path": LOCATOR, "args": {"model_name": target}}
        err = authorize_build_component(config, ConfigContext(), None, fl_ctx=fl_ctx, event_handlers=[])
    finally:
        AuditService.close()
    line = (
        f"refused model locator 'locator' (NPModelLocator): model_name {target!r} (read) resolves to {target!r}, "
        f"outside the job's run folder {run_folder(site)!r}: {guard.RULE}"
    )
    assert err == line
    assert f"Job {JOB}: {line}" in caplog.text
    text = audit.read_text()
    assert "lead@other.org" in text and guard.AUDIT_ACTION in text and line in text, text


def test_upstream_configurator_resolves_vars_before_the_check(site):
    """{WORKSPACE} (a FLARE system variable) and a config-defined variable point the locator at startup/ and at
    the job store: upstream's JSON configurator resolves them first, so the check sees, and names, the real path."""
    from nvflare.private.fed.server.server_json_config import ServerJsonConfigurator
    from nvflare.private.fed.utils.fed_utils import authorize_build_component

    app = site / JOB / "app_server"
    (site / JOB / "meta.json").write_text("{}")
    store = os.path.dirname(os.path.dirname(store_model(site)))
    target, key = store_model(site), os.path.realpath(site / "startup" / "server.key")
    for model_name, real in (
        ("{STORE}/" + VICTIM + "/MODEL_global_model.npy", target),
        ("{WORKSPACE}/startup/server.key", key),
    ):
        config = {
            "format_version": 2,
            "STORE": store,
            "workflows": [],
            "components": [{"id": "locator", "path": LOCATOR, "args": {"model_name": model_name}}],
        }
        (app / "config" / "config_fed_server.json").write_text(json.dumps(config))
        args = argparse.Namespace(
            job_id=JOB, workspace=str(site), server_config="config/config_fed_server.json", env=""
        )
        conf = ServerJsonConfigurator(
            workspace_obj=Workspace(str(site), "server"),
            config_file_name=str(app / "config" / "config_fed_server.json"),
            args=args,
            app_root=str(app),
        )
        conf.set_component_build_authorizer(authorize_build_component, fl_ctx=context(site, {}), event_handlers=[])
        with pytest.raises(Exception) as e:
            conf.configure()
        resolved = real if real == target else f"{site}/startup/server.key"
        assert (
            f"component not authorized: refused model locator 'locator' (NPModelLocator): model_name {resolved!r} "
            f"(read) resolves to {real!r}, outside the job's run folder {run_folder(site)!r}: {guard.RULE}"
        ) in str(e.value), str(e.value)
