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
"""The naming rule of downloaded components (component_file_names), without a FLARE system.

The system tests (test_download_component_*, test_framework_models) show the three
surfaces use it; here the rule itself meets ordinary and hostile recorded file names,
and the admin client's final-name claim runs on a real folder.
"""

import os

import pytest

from nvflare.apis.utils.component_file_names import download_file_name, safe_extension
from nvflare.apis.utils.model_record_info import clean_model_info
from nvflare.fuel.hci.client.component_landing import claim_final_name as _claim_final_name
from nvflare.fuel.hci.component_info_table import info_row, table_cells

SHA = "a" * 64


def record(file_name, recorded=True):
    return {"sha256": SHA, "size": 1, "file_name": file_name, "recorded": recorded}


@pytest.mark.parametrize(
    "file_name, extension",
    [
        ("tf_model.weights.h5", ".weights.h5"),  # Keras 3 insists on the two parts
        ("FL_global_model.pt", ".pt"),
        ("best_FL_global_model.pt", ".pt"),
        ("global_model.npz", ".npz"),
        ("last_global_model.npy", ".npy"),
        ("model.keras", ".keras"),
        ("archive.tar.gz", ".tar.gz"),
        ("a.b.c.weights.h5", ".weights.h5"),  # at most two parts
        ("model", ""),
        ("global_model", ""),
    ],
)
def test_extension_of_ordinary_names(file_name, extension):
    assert safe_extension(file_name) == extension


@pytest.mark.parametrize(
    "hostile, extension",
    [
        ("../../etc/passwd", ""),
        ("x/../../.bashrc", ""),  # hidden file: no stem
        ("dir/evil.pt", ".pt"),  # folders dropped: only the extension is kept
        ("dir\\evil.pt", ".pt"),
        ("m.pt/", ""),  # ends in a separator: empty last segment
        (".pt", ""),
        ("..pt", ""),
        ("...", ""),
        (".", ""),
        ("..", ""),
        ("m.pt\n", ""),
        ("m.p\x00t", ""),
        ("m.\x1b[31mpt", ""),
        ("m.pt;rm -rf ~", ""),
        ("m.p t", ""),
        ("m.pt ", ""),
        ("m.тест", ""),  # non-ASCII letters
        ("m.ｐｔ", ""),  # fullwidth letters (str.isalnum would take them)
        ("m." + "x" * 17, ""),  # one part too long
        ("m." + "x" * 17 + ".h5", ".h5"),  # first part too long: only the last kept
        ("m." + "a" * 16 + "." + "b" * 16, ""),  # both plain but 34 characters in all
        ("m" * 10_000 + ".pt", ".pt"),
        ("m.pt." * 1000 + "h5", ".pt.h5"),
        ("m.pt.", ""),
        ("m..pt", ".pt"),
        ("", ""),
        (None, ""),
        (42, ""),
        (["m.pt"], ""),
    ],
)
def test_hostile_recorded_names_give_only_a_plain_extension(hostile, extension):
    assert safe_extension(hostile) == extension
    name = download_file_name("MODEL_global_model", record(hostile))
    assert name == "MODEL_global_model" + extension
    assert "/" not in name and "\\" not in name and ".." not in name and name.isprintable()


def test_components_without_a_stored_record_keep_their_name():
    # the server measured these for the download (recorded False): logs, ERRORLOG_ models
    assert download_file_name("ERRORLOG_global_model", record("ERRORLOG_global_model", recorded=False)) == (
        "ERRORLOG_global_model"
    )
    assert download_file_name("ERRORLOG_global_model", {"sha256": SHA, "recorded": False, "file_name": "x.pt"}) == (
        "ERRORLOG_global_model"
    )
    assert download_file_name("LOG_server", None) == "LOG_server"
    # a list row without a record (no sha256): same name as its download
    assert download_file_name("LOG_server", {"name": "LOG_server", "kind": "LOG", "size": 3}) == "LOG_server"
    assert download_file_name("LOG_server", {"file_name": "x.pt"}) == "LOG_server"


def test_numbered_names_keep_the_extension_last():
    r = record("tf_model.weights.h5")
    assert download_file_name("MODEL_global_model", r, 1) == "MODEL_global_model__1.weights.h5"
    assert download_file_name("MODEL_bundle.zip", record("bundle.zip")) == "MODEL_bundle.zip"  # not .zip.zip
    assert download_file_name("MODEL_bundle.zip", record("bundle.zip"), 2) == "MODEL_bundle__2.zip"
    assert download_file_name("ERRORLOG_x", None, 3) == "ERRORLOG_x__3"


def test_claim_final_name_never_replaces_a_file(tmp_path):
    r = record("tf_model.weights.h5")
    (tmp_path / "MODEL_global_model.weights.h5").write_bytes(b"user's own")
    (tmp_path / "MODEL_global_model__1.weights.h5").mkdir()  # a folder takes the name too
    tmp = tmp_path / "MODEL_global_model.part-x"
    tmp.write_bytes(b"downloaded")
    final = _claim_final_name(str(tmp), str(tmp_path), "MODEL_global_model", r)
    assert final == str(tmp_path / "MODEL_global_model__2.weights.h5")
    assert open(final, "rb").read() == b"downloaded"
    assert (tmp_path / "MODEL_global_model.weights.h5").read_bytes() == b"user's own"
    assert not tmp.exists()


def test_claim_final_name_with_a_hostile_record_stays_in_the_folder(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    tmp = dest / "MODEL_global_model.part-x"
    tmp.write_bytes(b"downloaded")
    final = _claim_final_name(str(tmp), str(dest), "MODEL_global_model", record("../../../outside.pt/../x"))
    assert final == str(dest / "MODEL_global_model")
    assert sorted(os.listdir(tmp_path)) == ["dest"] and os.listdir(dest) == ["MODEL_global_model"]


def test_model_info_keeps_only_well_formed_values():
    good = {"round": 3, "metric_name": "val_accuracy", "metric_value": 0.75, "metric_mode": "max"}
    assert clean_model_info(good) == good
    assert clean_model_info({**good, "extra": "x"}) == good
    bad = {"round": True, "metric_name": "acc\n", "metric_value": float("nan"), "metric_mode": "best"}
    assert clean_model_info(bad) == {}
    assert clean_model_info({"round": -1, "metric_name": "x" * 65, "metric_value": "0.5"}) == {}
    assert clean_model_info({"round": 10**9, "metric_value": float("inf")}) == {}
    assert clean_model_info({"metric_value": 1}) == {"metric_value": 1.0}
    assert clean_model_info("round=3") == {}


def test_info_row_and_table_agree():
    rec = {
        "sha256": SHA,
        "size": 10,
        "file_name": "tf_model.weights.h5",
        "format": "TensorFlow",
        "kind": "best",
        "transfer": "link",
        "round": 2,
        "metric_name": "accuracy",
        "metric_value": 0.875,
        "metric_mode": "max",
    }
    row = info_row("MODEL_best_global_model", "MODEL", 10, rec)
    assert row == {
        "name": "MODEL_best_global_model",
        "kind": "MODEL",
        "size": 10,
        "sha256": SHA,
        "file_name": "tf_model.weights.h5",
        "format": "TensorFlow",
        "round": 2,
        "metric_name": "accuracy",
        "metric_value": 0.875,
        "metric_mode": "max",
        "download_name": "MODEL_best_global_model.weights.h5",
        "signed_by": "",
    }
    assert table_cells(row) == [
        "MODEL_best_global_model",
        "MODEL",
        "tf_model.weights.h5",
        "TensorFlow",
        "10",
        "2",
        "accuracy=0.875 (max)",
        "not signed",
        SHA,
    ]
    assert table_cells(info_row("LOG_site-1", "LOG", 5, None)) == [
        "LOG_site-1",
        "LOG",
        "-",
        "-",
        "5",
        "-",
        "-",
        "not signed",
        "-",
    ]
