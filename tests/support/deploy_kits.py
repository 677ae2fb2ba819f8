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
"""Run the real `nvflare deploy prepare` on a kit, as an operator does."""

import subprocess
import sys
from pathlib import Path

import yaml

NVFLARE = str(Path(sys.executable).parent / "nvflare")


def deploy_prepare(kit: Path, config: dict, config_file: Path, out: Path) -> str:
    """`nvflare deploy prepare <kit> --config <config_file> --output <out>` with ``config`` (the
    deploy config, e.g. {"runtime": "docker", ...}) written to ``config_file``; its output. Fails the test on error."""
    config_file.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [NVFLARE, "deploy", "prepare", str(kit), "--config", str(config_file), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr
