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
"""Which files each shipped persistor's config makes it read or write, and the rule applied to them.

Real upstream classes, a real workspace layout on disk and a real FLContext as upstream's
component build hands it to the site's components; the system tests
(test_persistor_path_guard_system.py) run the same check in a job's server process.
"""

import argparse
import json
import os

import pytest

from nvflare.apis.fl_constant import FLContextKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.workspace import Workspace
from nvflare.app_common.abstract.model_persistor import ModelPersistor
from nvflare.app_common.ccwf.comps.np_file_model_persistor import NPFileModelPersistor
from nvflare.app_common.np.np_model_persistor import NPModelPersistor
from nvflare.app_common.path_guard import persistor_path_guard as guard
from nvflare.app_common.path_guard.component_paths import configured_paths as persistor_paths
from nvflare.app_common.path_guard.persistor_paths import READ, WRITE, JobFolders
from nvflare.app_common.workflows.lr.np_persistor import LRModelPersistor
from nvflare.app_opt.pt.file_model_persistor import PTFileModelPersistor

JOB = "9b1e5a36-job"
PT = "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor"


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A server workspace with a deployed job: <root>/<job>/app_server/config/environment.json."""
    monkeypatch.delenv(guard.env_var_name(guard.ALLOWED_DIRS), raising=False)
    monkeypatch.delenv(guard.env_var_name(guard.READ_ALLOWED_DIRS), raising=False)
    root = tmp_path / "server"
    app = root / JOB / "app_server"
    (app / "config").mkdir(parents=True)
    (app / "custom").mkdir()
    (root / "startup").mkdir()
    (root / "local").mkdir()
    (root / "startup" / "server.key").write_bytes(b"key")
    return root


def folders(root) -> JobFolders:
    run = os.path.join(root, JOB)
    app = os.path.join(run, "app_server")
    return JobFolders(run, app, run, os.path.join(app, "config", "environment.json"))


def rows(paths):
    return [(p.setting, p.path, p.access) for p in paths]


def test_pt_defaults_stay_in_the_app_folder(ws):
    f = folders(ws)
    assert rows(persistor_paths(PTFileModelPersistor, {}, f)) == [
        ("global_model_file_name", os.path.join(f.app_root, "FL_global_model.pt"), WRITE),
        ("best_global_model_file_name", os.path.join(f.app_root, "best_FL_global_model.pt"), WRITE),
    ]
    assert guard.refusals(persistor_paths(PTFileModelPersistor, {}, f), f.run_dir, ()) == []


def test_pt_absolute_and_dotdot_names_are_refused(ws):
    f = folders(ws)
    key = str(ws / "startup" / "server.key")
    args = {"global_model_file_name": key, "best_global_model_file_name": "../../startup/fed_server.json"}
    assert guard.refusals(persistor_paths(PTFileModelPersistor, args, f), f.run_dir, ()) == [
        f"global_model_file_name {key!r} (write) resolves to {key!r}, outside the job's run folder {f.run_dir!r}",
        f"best_global_model_file_name '../../startup/fed_server.json' (write) resolves to "
        f"{str(ws / 'startup' / 'fed_server.json')!r}, outside the job's run folder {f.run_dir!r}",
    ]


def test_pt_checkpoint_reads_may_come_from_an_allowed_dir_but_writes_never(ws, tmp_path):
    f = folders(ws)
    allowed = tmp_path / "pretrained"
    allowed.mkdir()
    ckpt = str(allowed / "init.pt")
    args = {"source_ckpt_file_full_name": ckpt, "global_model_file_name": str(allowed / "overwrite.pt")}
    paths = persistor_paths(PTFileModelPersistor, args, f)
    assert ("source_ckpt_file_full_name", ckpt, READ) in rows(paths)
    assert guard.refusals(paths, f.run_dir, (str(allowed),)) == [
        f"global_model_file_name {str(allowed / 'overwrite.pt')!r} (write) resolves to "
        f"{str(allowed / 'overwrite.pt')!r}, outside the job's run folder {f.run_dir!r}"
    ]
    assert len(guard.refusals(paths, f.run_dir, ())) == 2  # without the setting the read is refused too


def test_pt_relative_checkpoint_is_taken_from_custom_and_may_not_climb_out(ws):
    f = folders(ws)
    inside = persistor_paths(PTFileModelPersistor, {"source_ckpt_file_full_name": "init.pt"}, f)
    assert ("source_ckpt_file_full_name", os.path.join(f.app_root, "custom", "init.pt"), READ) in rows(inside)
    assert guard.refusals(inside, f.run_dir, ()) == []
    out = persistor_paths(PTFileModelPersistor, {"source_ckpt_file_full_name": "../../../startup/server.key"}, f)
    assert guard.refusals(out, f.run_dir, ()) == [
        f"source_ckpt_file_full_name '../../../startup/server.key' (read) resolves to "
        f"{str(ws / 'startup' / 'server.key')!r}, outside the job's run folder {f.run_dir!r}"
    ]


def test_pt_environment_json_checkpoint_dir_and_file(ws):
    f = folders(ws)
    outside = str(ws / "planted")
    (ws / JOB / "app_server" / "config" / "environment.json").write_text(
        json.dumps({"APP_CKPT_DIR": outside, "APP_CKPT": "../../startup/server.key"})
    )
    got = guard.refusals(persistor_paths(PTFileModelPersistor, {}, f), f.run_dir, ())
    assert got == [
        f"environment.json APP_CKPT_DIR {outside!r} (write) resolves to {outside!r}, outside the job's run folder "
        f"{f.run_dir!r}",
        f"global_model_file_name 'FL_global_model.pt' (write) resolves to {outside + '/FL_global_model.pt'!r}, "
        f"outside the job's run folder {f.run_dir!r}",
        f"best_global_model_file_name 'best_FL_global_model.pt' (write) resolves to "
        f"{outside + '/best_FL_global_model.pt'!r}, outside the job's run folder {f.run_dir!r}",
        f"environment.json APP_CKPT '../../startup/server.key' (read) resolves to "
        f"{str(ws / 'startup' / 'server.key')!r}, outside the job's run folder {f.run_dir!r}",
    ]


def test_a_symlink_inside_the_run_folder_that_leads_out_is_refused(ws):
    f = folders(ws)
    os.symlink(str(ws / "startup"), os.path.join(f.app_root, "models"))
    paths = persistor_paths(PTFileModelPersistor, {"global_model_file_name": "models/server.key"}, f)
    assert guard.refusals(paths, f.run_dir, ()) == [
        f"global_model_file_name 'models/server.key' (write) resolves to {str(ws / 'startup' / 'server.key')!r}, "
        f"outside the job's run folder {f.run_dir!r}"
    ]


def test_numpy_persistors_and_subclasses(ws):
    f = folders(ws)
    for cls in (NPModelPersistor, LRModelPersistor):
        assert guard.refusals(persistor_paths(cls, {}, f), f.run_dir, ()) == []
        bad = guard.refusals(persistor_paths(cls, {"model_dir": "/etc"}, f), f.run_dir, ())
        assert bad == [
            f"model_dir/model_name '/etc/{'server.npy' if cls is NPModelPersistor else 'weights.npy'}' ({access}) "
            f"resolves to {'/etc/' + ('server.npy' if cls is NPModelPersistor else 'weights.npy')!r}, outside the "
            f"job's run folder {f.run_dir!r}"
            for access in (READ, WRITE)
        ]
    ccwf = persistor_paths(NPFileModelPersistor, {"best_global_model_file_name": "../../x.npy"}, f)
    assert guard.refusals(ccwf, f.run_dir, ()) == [
        f"model_dir/best_global_model_file_name 'models/../../x.npy' (write) resolves to {str(ws / 'x.npy')!r}, "
        f"outside the job's run folder {f.run_dir!r}"
    ]


def test_numpy_model_is_saved_under_the_result_root_when_the_operator_sets_one(ws, tmp_path):
    results = tmp_path / "results" / JOB
    f = folders(ws)
    f = JobFolders(f.run_dir, f.app_root, str(results), f.env_file)
    paths = persistor_paths(NPModelPersistor, {}, f)
    assert ("model_dir/model_name", str(results / "models" / "server.npy"), WRITE) in rows(paths)
    assert guard.refusals(paths, f.run_dir, ()) == []
    bad = persistor_paths(NPModelPersistor, {"model_dir": "../../elsewhere"}, f)
    assert (
        f"model_dir/model_name '../../elsewhere/server.npy' (write) resolves to "
        f"{str(tmp_path / 'elsewhere' / 'server.npy')!r}, outside the job's result folder {str(results)!r}"
    ) in guard.refusals(bad, f.run_dir, ())


def _fake_upstream(module: str, name: str, init):
    """A class that stands in for an upstream persistor whose framework is not installed here."""
    return type(name, (ModelPersistor,), {"__module__": module, "__qualname__": name, "__init__": init})


def test_tf_sklearn_xgboost_rules(ws):
    f = folders(ws)

    def tf_init(self, model=None, save_name="tf_model.weights.h5", filter_id=None, source_ckpt_file_full_name=None):
        pass

    def jl_init(self, initial_params=None, save_name="model_param.joblib", model_path=None):
        pass

    def xgb_init(self, save_name="xgboost_model.json", load_as_dict=True):
        pass

    tf = _fake_upstream("nvflare.app_opt.tf.model_persistor", "TFModelPersistor", tf_init)
    jl = _fake_upstream("nvflare.app_opt.sklearn.joblib_model_param_persistor", "JoblibModelParamPersistor", jl_init)
    xgb = _fake_upstream("nvflare.app_opt.xgboost.tree_based.model_persistor", "XGBModelPersistor", xgb_init)
    assert rows(persistor_paths(tf, {"source_ckpt_file_full_name": "/data/m.h5"}, f)) == [
        ("save_name", os.path.join(f.app_root, "tf_model.weights.h5"), WRITE),
        ("source_ckpt_file_full_name", "/data/m.h5", READ),
    ]
    assert rows(persistor_paths(jl, {"initial_params": {"model_path": "/data/m.joblib"}}, f)) == [
        ("save_name", os.path.join(f.app_root, "model_param.joblib"), WRITE),
        ("initial_params.model_path", "/data/m.joblib", READ),
    ]
    assert rows(persistor_paths(xgb, {"save_name": "/etc/passwd"}, f)) == [("save_name", "/etc/passwd", WRITE)]


def test_a_persistor_subclass_s_own_arguments_get_the_general_rule(ws):
    """Arguments the base's rule does not cover: path-named ones, and any value that looks like a path."""
    f = folders(ws)

    class MyPersistor(PTFileModelPersistor):
        def __init__(self, weights_path="w.pt", note="", **kwargs):
            super().__init__(**kwargs)

    got = rows(persistor_paths(MyPersistor, {"weights_path": "/srv/other/w.pt", "note": "/x", "tag": "v1"}, f))
    assert ("weights_path", "/srv/other/w.pt", WRITE) in got
    assert ("note", "/x", WRITE) in got  # absolute: a path whatever the argument is called
    assert [r for r in got if r[0] == "tag"] == []  # a plain word in an argument not named for paths


def test_allowed_dirs_settings_both_names_add_up(monkeypatch):
    old, new = guard.env_var_name(guard.ALLOWED_DIRS), guard.env_var_name(guard.READ_ALLOWED_DIRS)
    assert (old, new) == ("NVFLARE_MODEL_PERSISTOR_ALLOWED_DIRS", "NVFLARE_JOB_READ_ALLOWED_DIRS")
    monkeypatch.setenv(old, '["/data/models", "/srv/ckpt/"]')
    assert guard.load_allowed_dirs() == ("/data/models", "/srv/ckpt")
    monkeypatch.setenv(new, os.pathsep.join(["/srv/ckpt", "/eval"]))
    assert guard.load_allowed_dirs() == ("/srv/ckpt", "/eval", "/data/models")
    for name, value, problem in (
        (old, '["models"]', "'models' is not an absolute directory"),
        (new, "[/data/models]", "'[/data/models]' is not a JSON list: Expecting value: line 1 column 2 (char 1)"),
        (new, "/", "'/' would allow every file of the site"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError) as e:
            guard.load_allowed_dirs()
        key = guard.ALLOWED_DIRS if name == old else guard.READ_ALLOWED_DIRS
        assert str(e.value) == f"invalid {key} (site local/resources.json or env {name}): {problem}"
        monkeypatch.delenv(name)


def build_context(ws, config: dict) -> FLContext:
    fl_ctx = FLContext()
    fl_ctx.set_prop(FLContextKey.WORKSPACE_OBJECT, Workspace(str(ws), "server"), private=True)
    fl_ctx.set_prop(FLContextKey.CURRENT_JOB_ID, JOB, private=False)
    fl_ctx.set_prop(FLContextKey.APP_ROOT, str(ws / JOB / "app_server"), private=True)
    fl_ctx.set_prop(FLContextKey.ARGS, argparse.Namespace(env=os.path.join("config", "environment.json")))
    fl_ctx.set_prop(FLContextKey.COMPONENT_CONFIG, config, private=True)
    fl_ctx.set_prop(FLContextKey.COMPONENT_NODE, None, private=True)
    return fl_ctx


def test_check_component_names_persistor_setting_path_and_rule(ws):
    key = str(ws / "startup" / "server.key")
    config = {"id": "persistor", "path": PT, "args": {"best_global_model_file_name": key}}
    run = os.path.realpath(ws / JOB)
    assert guard.check_component(build_context(ws, config)) == [
        f"refused persistor 'persistor' (PTFileModelPersistor): best_global_model_file_name {key!r} (write) "
        f"resolves to {key!r}, outside the job's run folder {run!r}: {guard.RULE}"
    ]
    fine = {"id": "persistor", "path": PT, "args": {"global_model_file_name": "sub/final.pt"}}
    assert guard.check_component(build_context(ws, fine)) == []
    other = {
        "id": "agg",
        "path": "nvflare.app_common.aggregators.intime_accumulate_model_aggregator."
        "InTimeAccumulateWeightedAggregator",
        "args": {"expected_data_kind": "WEIGHTS"},
    }
    assert guard.check_component(build_context(ws, other)) == []
