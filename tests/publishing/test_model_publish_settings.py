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
"""Server settings for model publishing: each bad value is reported with the key's name.

Runs the installed settings reader in a fresh interpreter with NVFLARE_* environment
overrides, the same lookup the server does when the key is absent from resources.json.
"""

import os
import subprocess
import sys

import pytest

READ = "from nvflare.app_common.model_publishing.model_publish_settings import load_publish_settings as l; print(l())"


def read_settings(**env):
    full = dict(os.environ)
    full.update({f"NVFLARE_{k.upper()}": v for k, v in env.items()})
    return subprocess.run([sys.executable, "-c", READ], env=full, capture_output=True, text=True, timeout=60)


def test_defaults():
    proc = read_settings()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "PublishSettings(enabled=True, global_name='global_model', best_name='best_global_model', "
        "transfer='auto', drop_from_workspace=False, timeout=600.0, job_images_have_fork=False)"
    )


@pytest.mark.parametrize("word, value", [("true", True), ("Yes", True), ("1", True), ("false", False), ("0", False)])
def test_job_images_have_fork_reads_true_and_false_words(word, value):
    proc = read_settings(model_publish_job_images_have_fork=word)
    assert proc.returncode == 0, proc.stderr
    assert f"job_images_have_fork={value})" in proc.stdout


def test_environment_overrides():
    proc = read_settings(model_publish_global_name="final", model_publish_transfer="stream", model_publish_timeout="30")
    assert proc.returncode == 0, proc.stderr
    assert "global_name='final'" in proc.stdout and "transfer='stream'" in proc.stdout and "timeout=30.0" in proc.stdout


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"model_publish_transfer": "bogus"},
            "invalid model publishing setting model_publish_transfer: 'bogus' is not one of ('auto', 'stream')",
        ),
        (
            {"model_publish_best_name": "../x"},
            "invalid model publishing setting model_publish_best_name: invalid component name 'MODEL_../x'",
        ),
        (
            {"model_publish_best_name": "global_model"},
            "model_publish_global_name and model_publish_best_name must differ, both are 'global_model'",
        ),
        ({"model_publish_timeout": "0"}, "model_publish_timeout must be a positive number of seconds, got 0.0"),
        (
            {"model_publish_timeout": "soon"},
            "invalid model publishing setting model_publish_timeout: var model_publish_timeout's value 'soon' "
            "cannot be converted to float",
        ),
        (
            {"model_publish_job_images_have_fork": "ture"},
            "invalid model publishing setting model_publish_job_images_have_fork: 'ture' must be true or false",
        ),
    ],
)
def test_bad_settings_name_the_key(env, message):
    proc = read_settings(**env)
    assert proc.returncode != 0
    assert f"ValueError: {message}" in proc.stderr, proc.stderr
