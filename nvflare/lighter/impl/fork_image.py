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
"""Images and VMs set up from provisioned kits install the fork, not upstream nvflare.

Upstream's DockerBuilder writes a Dockerfile whose ``RUN pip install nvflare`` takes
upstream from the package index, and the AWS/Azure start scripts run ``pip install
nvflare`` on the new VM: every container or VM of a fork deployment would silently run
upstream. The fork is not on any index, so the kit gets the very wheel the provisioner
runs (rebuilt from the installed files, each checked against RECORD) and the generated
scripts install and pin that wheel instead.
"""

import importlib.metadata
import os
import re
import shutil
import zipfile
from pathlib import Path

from nvflare.fuel.utils.wheel_record import WheelWriter, record_hash

UPSTREAM_INSTALL_LINE = "RUN pip install nvflare\n"
CONSTRAINTS_FILE = "/etc/nvflare-constraints.txt"
INSTALL_SCRIPT = Path(__file__).with_name("install_nvflare_fork.sh")

# Installer bookkeeping that is not part of a wheel.
_NOT_IN_WHEEL = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def write_installed_wheel(dest_dir, dist_name: str = "nvflare") -> Path:
    """Rebuild the wheel of the installed (pure-Python) distribution into dest_dir.

    Raises RuntimeError naming the file if an installed file differs from its RECORD,
    so a locally edited install is never shipped into images.
    """
    dist = importlib.metadata.distribution(dist_name)
    version = dist.version
    info_dir = f"{dist.metadata['Name']}-{version}.dist-info"
    wheel_path = Path(dest_dir) / f"{dist.metadata['Name']}-{version}-py3-none-any.whl"
    part = wheel_path.with_name(wheel_path.name + ".part")
    try:
        _write_wheel(dist, info_dir, version, part)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, wheel_path)
    return wheel_path


def _write_wheel(dist, info_dir: str, version: str, path: Path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        wheel = WheelWriter(z)
        for f in sorted(dist.files, key=str):
            name = str(f).replace(os.sep, "/")
            if name.startswith("..") or f.hash is None:
                continue  # console scripts and bytecode are the installer's, made again on install
            if name.startswith(info_dir + "/") and name.split("/")[-1] in _NOT_IN_WHEEL:
                continue
            data = Path(f.locate()).read_bytes()
            if f"{f.hash.mode}={f.hash.value}" != record_hash(data):
                raise RuntimeError(f"installed {name} does not match its RECORD: reinstall nvflare {version}")
            info = zipfile.ZipInfo(name, _FIXED_TIME)
            info.external_attr = (0o100755 if os.access(f.locate(), os.X_OK) else 0o100644) << 16
            wheel.add(info, data)
        wheel.write_record(zipfile.ZipInfo(f"{info_dir}/RECORD", _FIXED_TIME))


def fork_install_lines(wheel_name: str) -> str:
    stage = "/tmp/nvflare-fork"
    return (
        f"COPY {wheel_name} {INSTALL_SCRIPT.name} {stage}/\n"
        f"RUN sh {stage}/{INSTALL_SCRIPT.name} {stage}/{wheel_name} {CONSTRAINTS_FILE} && rm -rf {stage}\n"
        f"ENV PIP_CONSTRAINT={CONSTRAINTS_FILE}\n"
    )


def adapt_docker_build_dir(build_dir) -> bool:
    """Make a DockerBuilder build folder install the fork; False if its Dockerfile installs no nvflare."""
    build_dir = Path(build_dir)
    dockerfile = build_dir / "Dockerfile"
    text = dockerfile.read_text()
    if UPSTREAM_INSTALL_LINE not in text:
        return False
    wheel = write_installed_wheel(build_dir)
    shutil.copyfile(INSTALL_SCRIPT, build_dir / INSTALL_SCRIPT.name)
    dockerfile.write_text(text.replace(UPSTREAM_INSTALL_LINE, fork_install_lines(wheel.name), 1))
    return True


# The cloud start scripts' "pip install [flags] nvflare &&" and the kit's startup folder
# on the VM, as the scripts name it when they install requirements.txt from there.
_PIP_NVFLARE = re.compile(r"(python3 -m pip install (?:--[\w-]+ )*)nvflare(?= &&)")
_VM_REQUIREMENTS = re.compile(r"-r (\S*?/startup)/requirements\.txt")
CLOUD_START_SCRIPTS = ("aws_start.sh", "azure_start.sh")
CLOUD_CONSTRAINTS = "nvflare-constraints.txt"


def adapt_cloud_start_script(script: Path, wheel_name: str) -> bool:
    """Install ``wheel_name`` from the kit's startup folder on the VM instead of nvflare
    from the index, and keep it pinned while requirements.txt installs; False if the
    script does not install nvflare that way."""
    text = script.read_text()
    install = _PIP_NVFLARE.search(text)
    requirements = _VM_REQUIREMENTS.search(text, install.end()) if install else None
    if not requirements:
        return False
    vm_startup = requirements.group(1)
    text = text[: install.start()] + install.group(1) + f"{vm_startup}/{wheel_name}" + text[install.end() :]
    text = _VM_REQUIREMENTS.sub(lambda m: f"{m.group(0)} -c {m.group(1)}/{CLOUD_CONSTRAINTS}", text)
    script.write_text(text)
    return True


def adapt_cloud_kits(project, ctx) -> list:
    """After AWSBuilder/AzureBuilder: each server/client kit with a cloud start script gets
    the fork wheel and a constraints file in its startup folder; returns the adapted scripts."""
    participants = [p for p in [project.get_server(), *project.get_clients()] if p]
    adapted = []
    wheel = None
    for participant in participants:
        startup = Path(ctx.get_kit_dir(participant))
        for name in CLOUD_START_SCRIPTS:
            script = startup / name
            if not script.is_file():
                continue
            if wheel is None:
                wheel = write_installed_wheel(startup)
            elif not (startup / wheel.name).exists():
                shutil.copyfile(wheel, startup / wheel.name)
            if adapt_cloud_start_script(script, wheel.name):
                (startup / CLOUD_CONSTRAINTS).write_text(f"nvflare=={importlib.metadata.version('nvflare')}\n")
                adapted.append(script)
    return adapted
