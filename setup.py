#!/usr/bin/env python3
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
"""Build of the nvflare model fork: pinned upstream wheel + patches/ + overlay nvflare/.

This file is the whole build. It is three things at once:

* an in-tree PEP 517 backend (``pyproject.toml`` points at it), so ``pip install .``,
  ``pip wheel .`` and ``python -m build`` work with no build dependencies;
* a script: ``python setup.py wheel [-o DIR]`` / ``python setup.py sdist [-o DIR]``;
* a library for ``tools/forktool.py``, so the developer tool and the build can never
  disagree about where the upstream wheel comes from, how it is verified and how patches
  are applied.

Why repack the released wheel instead of building from source: the wheel is what users
install, with its package data, file modes, entry points and metadata already final.
Only the standard library is used, so the build runs inside pip's empty isolated env; the
two overlay modules it shares with the installed fork (file_digest, wheel_record) are
standard-library-only too and loaded by path (overlay_module).
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PIN_FILE = ROOT / "upstream.json"
PATCHES_DIR = ROOT / "patches"
SERIES_FILE = PATCHES_DIR / "series"
OVERLAY_DIR = ROOT / "nvflare"

ENV_WHEEL = "NVFLARE_FORK_UPSTREAM_WHEEL"
ENV_CACHE = "NVFLARE_FORK_CACHE"

# Files that go into the sdist, so a wheel built from it is the same as one built here.
SDIST_FILES = ["pyproject.toml", "setup.py", "upstream.json", "README.md", "CHANGELOG.md", "LICENSE"]

# Overlay modules that moved (path before -> path now; a target outside nvflare/ is no longer in
# the wheel), listed in MODIFICATIONS so that a traceback, a site's config or a doc naming the
# old path can be followed. Kits name only the two widgets, which stay where they are.
MOVED_OVERLAY_MODULES = {
    "nvflare/app_common/widgets/best_model_keeper.py": "nvflare/app_common/model_publishing/best_model_keeper.py",
    "nvflare/app_common/widgets/model_backfill.py": "nvflare/app_common/model_publishing/model_backfill.py",
    "nvflare/app_common/widgets/model_inventory.py": "nvflare/app_common/model_publishing/model_inventory.py",
    "nvflare/app_common/widgets/model_prehash.py": "nvflare/app_common/model_publishing/model_prehash.py",
    "nvflare/app_common/widgets/model_publish_defs.py": "nvflare/app_common/model_publishing/model_publish_defs.py",
    "nvflare/app_common/widgets/model_publish_settings.py": "nvflare/app_common/model_publishing/model_publish_settings.py",
    "nvflare/app_common/widgets/model_publisher_injection.py": "nvflare/app_common/model_publishing/model_publisher_injection.py",
    "nvflare/app_common/widgets/model_signer.py": "nvflare/app_common/model_publishing/model_signer.py",
    "nvflare/app_common/widgets/model_signing_key.py": "nvflare/app_common/model_publishing/model_signing_key.py",
    "nvflare/app_common/widgets/run_folder_files.py": "nvflare/app_common/model_publishing/run_folder_files.py",
    "nvflare/app_common/widgets/persistor_path_guard.py": "nvflare/app_common/path_guard/persistor_path_guard.py",
    "nvflare/app_common/widgets/persistor_paths.py": "nvflare/app_common/path_guard/persistor_paths.py",
    "nvflare/app_common/widgets/component_paths.py": "nvflare/app_common/path_guard/component_paths.py",
    "nvflare/app_common/widgets/site_zones.py": "nvflare/app_common/path_guard/site_zones.py",
    "nvflare/private/fed/server/component_range_server.py": "nvflare/private/fed/server/component_transfer_server.py",
    "nvflare/fuel/hci/component_download_defs.py": "nvflare/fuel/hci/job_component_defs.py",
    "nvflare/fuel/hci/component_range_defs.py": "nvflare/fuel/hci/job_component_defs.py",
    "nvflare/fuel/hci/completion_defs.py": "nvflare/fuel/hci/job_component_defs.py",
    "nvflare/fuel/utils/fork_settings.py": "tools/settings_catalog.py (not in the wheel: only the docs generator reads it)",
}

# Comment syntax per file type, for the Apache-2.0 §4(b) notice in patched files.
_HASH_COMMENT_SUFFIXES = (".py", ".yml", ".yaml", ".sh", ".cfg", ".toml", ".ini")


class BuildError(Exception):
    """A build failure whose message tells the user what went wrong and what to do."""


# ---------------------------------------------------------------------------------------
# The pin
# ---------------------------------------------------------------------------------------


def load_pin() -> dict:
    with open(PIN_FILE, encoding="utf-8") as f:
        pin = json.load(f)
    for key in ("project", "version", "wheel", "sha256", "local_label", "fork_revision"):
        if key not in pin:
            raise BuildError(f"{PIN_FILE.name} lacks the key '{key}'")
    return pin


def fork_version(pin: dict) -> str:
    return f"{pin['version']}+{pin['local_label']}.{pin['fork_revision']}"


def overlay_module(name: str):
    """The overlay module ``nvflare.fuel.utils.<name>``, loaded from its file in this repo.

    The build shares code with the installed fork (file_digest, wheel_record) but runs
    before any nvflare exists (pip's isolated env), so such modules use the standard
    library only and are loaded by path, never imported as ``nvflare.*``.
    """
    if name not in _OVERLAY_MODULES:
        _OVERLAY_MODULES[name] = _load_file_module(
            f"_nvflare_fork_build_{name}", OVERLAY_DIR / "fuel" / "utils" / f"{name}.py"
        )
    return _OVERLAY_MODULES[name]


_OVERLAY_MODULES = {}


def _load_file_module(module_name: str, path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sha256_of(path) -> str:
    return overlay_module("file_digest").sha256_and_size(path)[0]


# ---------------------------------------------------------------------------------------
# Finding the upstream wheel: explicit path, local cache, or pip from the configured index
# ---------------------------------------------------------------------------------------


def cache_dir() -> Path:
    explicit = os.environ.get(ENV_CACHE)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nvflare-fork"


def _verify(path: Path, pin: dict, origin: str, remedy: str) -> Path:
    actual = sha256_of(path)
    if actual != pin["sha256"]:
        raise BuildError(
            f"refusing the upstream wheel {path} ({origin}): its sha256 is {actual}, but {PIN_FILE.name} "
            f"pins {pin['wheel']} at {pin['sha256']}. The file is not the released upstream wheel "
            f"(corrupt, tampered with, or a different version). {remedy}"
        )
    return path


def _pip_env() -> dict:
    """The environment for a pip subprocess started from inside an isolated build.

    pip's build isolation puts its own overlay site-packages on PYTHONPATH; a ``python -m
    pip`` child with that PYTHONPATH cannot import pip (the overlay has none), so drop it.
    """
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONNOUSERSITE", "PIP_BUILD_TRACKER", "PIP_REQ_TRACKER"):
        env.pop(key, None)
    return env


def _find_pip_python(env: dict):
    candidates = [
        sys.executable,
        getattr(sys, "_base_executable", None),
        shutil.which("python3"),
        shutil.which("python"),
    ]
    seen = set()
    for exe in candidates:
        if not exe or exe in seen:
            continue
        seen.add(exe)
        probe = subprocess.run([exe, "-m", "pip", "--version"], env=env, capture_output=True, text=True)
        if probe.returncode == 0:
            return exe
    return None


def _fetch_with_pip(pin: dict, dest: Path) -> Path:
    env = _pip_env()
    exe = _find_pip_python(env)
    if exe is None:
        raise BuildError(
            f"cannot fetch {pin['wheel']}: no Python with pip was found. Download it yourself "
            f"(pip download {pin['project']}=={pin['version']} --no-deps) and set {ENV_WHEEL} to its path."
        )
    with tempfile.TemporaryDirectory(prefix="nvflare-fork-fetch-") as tmp:
        cmd = [
            exe,
            "-m",
            "pip",
            "download",
            f"{pin['project']}=={pin['version']}",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--dest",
            tmp,
        ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        fetched = Path(tmp) / pin["wheel"]
        if proc.returncode != 0 or not fetched.is_file():
            raise BuildError(
                f"pip could not fetch {pin['wheel']} from the configured index (exit {proc.returncode}):\n"
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}\n"
                f"Offline? Set {ENV_WHEEL} to a local copy of the upstream wheel."
            )
        _verify(fetched, pin, "just downloaded by pip", "Check the package index you are configured to use.")
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + f".part-{os.getpid()}")
        shutil.copyfile(fetched, part)
        os.replace(part, dest)
    return dest


def locate_upstream_wheel(pin: dict = None, log=None) -> Path:
    """Return a verified path to the pinned upstream wheel, fetching it once if needed."""
    pin = pin or load_pin()
    log = log or (lambda msg: None)
    explicit = os.environ.get(ENV_WHEEL)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise BuildError(f"{ENV_WHEEL}={explicit} does not name a file")
        log(f"upstream wheel from {ENV_WHEEL}: {path}")
        return _verify(path, pin, f"from {ENV_WHEEL}", f"Point {ENV_WHEEL} at the genuine {pin['wheel']} from PyPI.")
    cached = cache_dir() / pin["wheel"]
    if cached.is_file():
        log(f"upstream wheel from cache: {cached}")
        return _verify(
            cached,
            pin,
            "local cache",
            f"Delete it (rm '{cached}') so the build fetches a fresh copy, or set {ENV_WHEEL} to a genuine copy.",
        )
    log(f"fetching {pin['wheel']} with pip into {cached.parent}")
    try:
        return _fetch_with_pip(pin, cached)
    except OSError:
        # An unwritable cache must not stop a build: keep the wheel in a private temp dir.
        return _fetch_with_pip(pin, Path(tempfile.mkdtemp(prefix="nvflare-fork-wheel-")) / pin["wheel"])


# ---------------------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------------------


def read_series(series_file: Path = SERIES_FILE) -> list:
    """Patch file names in application order (quilt syntax: blank lines and '#' comments ignored)."""
    if not series_file.is_file():
        return []
    names = []
    for line in series_file.read_text(encoding="utf-8").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            names.append(line)
    return names


def patch_targets(patch_file: Path) -> list:
    """Upstream paths a patch touches (from its ``diff --git a/X b/X`` lines)."""
    targets = []
    for line in patch_file.read_text(encoding="utf-8").splitlines():
        if line.startswith("diff --git a/"):
            targets.append(line.split(" b/", 1)[1])
    return targets


# Variables by which a git that runs us (a hook, git rebase --exec) points git at its own
# repository; a git started here must find the repository of the folder it runs in.
_GIT_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
)


def git_env(tree: Path, extra: dict = None) -> dict:
    """The environment for a git command on the repository (or plain folder) ``tree``.

    Without the outer git's location variables, and with the ceiling at ``tree``'s parent,
    so neither an outer repository nor one enclosing ``tree`` is ever taken as the target.
    ``extra`` is added last (identities, dates, a temporary index).
    """
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
    env["GIT_CEILING_DIRECTORIES"] = str(Path(tree).parent)
    env.update(extra or {})
    return env


def apply_patch(tree: Path, patch_file: Path):
    """Apply one patch strictly: no fuzz, no whitespace fixing, all hunks or nothing."""
    env = git_env(tree)
    if shutil.which("git"):
        cmd = ["git", "apply", "-p1", "--whitespace=nowarn", str(patch_file)]
    elif shutil.which("patch"):
        cmd = ["patch", "-p1", "--fuzz=0", "--forward", "--batch", "--no-backup-if-mismatch", "-i", str(patch_file)]
    else:
        raise BuildError("applying patches needs git or patch on PATH; neither was found")
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        files = ", ".join(patch_targets(patch_file)) or "?"
        raise BuildError(
            f"patch {patch_file.name} does not apply to upstream (files: {files}):\n"
            f"{(proc.stderr or proc.stdout).strip()}\n"
            f"Rebase it with: python tools/forktool.py tree, fix the commit, python tools/forktool.py export"
        )


def apply_series(tree: Path, patches_dir: Path = PATCHES_DIR, log=None) -> dict:
    """Apply every patch in series order; return {upstream path: [patch names]}."""
    log = log or (lambda msg: None)
    touched = {}
    for name in read_series(patches_dir / "series"):
        patch_file = patches_dir / name
        if not patch_file.is_file():
            raise BuildError(f"patches/series names {name}, but patches/{name} does not exist")
        log(f"applying {name}")
        apply_patch(tree, patch_file)
        for target in patch_targets(patch_file):
            touched.setdefault(target, []).append(name)
    return touched


# ---------------------------------------------------------------------------------------
# The repack
# ---------------------------------------------------------------------------------------


def overlay_files(overlay_dir: Path = OVERLAY_DIR) -> list:
    """Overlay files as wheel paths (``nvflare/...``), sorted, caches excluded."""
    out = []
    if not overlay_dir.is_dir():
        return out
    for path in sorted(overlay_dir.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        out.append(path.relative_to(overlay_dir.parent).as_posix())
    return out


def stamp_notice(text: str, notice: str) -> str:
    """Insert a one-line '#' notice right after the leading license comment block."""
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        i += 1
    if i == 0:  # no header: put it first (after a shebang, which cannot move)
        i = 1 if lines and lines[0].startswith("#!") else 0
    return "".join(lines[:i] + [notice + "\n"] + lines[i:])


def _stamp_version(version_py: str, upstream: str, version: str) -> str:
    old = f'"version": "{upstream}"'
    if version_py.count(old) != 1:
        raise BuildError(f"nvflare/_version.py does not hold exactly one {old}; the version stamp needs updating")
    return version_py.replace(old, f'"version": "{version}"')


def _stamp_metadata(metadata: str, upstream: str, version: str) -> str:
    old = f"Version: {upstream}\n"
    if old not in metadata:
        raise BuildError(f"METADATA has no line '{old.strip()}'")
    return metadata.replace(old, f"Version: {version}\n", 1)


def build_wheel_file(out_dir, log=None, editable=False) -> Path:
    """Build the fork wheel into out_dir and return its path.

    ``editable``: the PEP 660 wheel of ``pip install -e .``: upstream and the patched files
    as usual, but the overlay stays in this repo and is imported from it (see
    editable_finder.py), so overlay edits take effect without reinstalling.
    """
    log = log or (lambda msg: print(f"[nvflare-fork] {msg}", file=sys.stderr))
    pin = load_pin()
    version = fork_version(pin)
    upstream_wheel = locate_upstream_wheel(pin, log)
    up_info = f"{pin['project']}-{pin['version']}.dist-info"
    new_info = f"{pin['project']}-{version}.dist-info"

    with zipfile.ZipFile(upstream_wheel) as zin, tempfile.TemporaryDirectory(prefix="nvflare-fork-build-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        entries = [i for i in zin.infolist() if not i.is_dir()]
        original = {}
        for info in entries:
            data = zin.read(info)
            original[info.filename] = data
            dest = tree / info.filename
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        touched = apply_series(tree, log=log)

        on_disk = {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()}
        created = sorted(on_disk - set(original))
        deleted = sorted(set(original) - on_disk)
        if created or deleted:
            raise BuildError(
                f"patches may only modify upstream files (new files belong in the overlay): "
                f"created {created}, deleted {deleted}"
            )
        overlay = overlay_files()
        clashes = [p for p in overlay if p in original]
        if clashes:
            raise BuildError(f"overlay files shadow upstream files (rename them): {clashes}")

        notice = f"# Modified by the nvflare model fork: see {new_info}/MODIFICATIONS (Apache-2.0 section 4(b))."
        contents = {}
        patched = []
        for name, data in original.items():
            new = (tree / name).read_bytes()
            if new != data:
                patched.append(name)
                if name.endswith(_HASH_COMMENT_SUFFIXES):
                    new = stamp_notice(new.decode("utf-8"), notice).encode("utf-8")
            contents[name] = new
        untracked = sorted(set(patched) - set(touched))
        if untracked:
            raise BuildError(f"files changed that no patch names: {untracked}")

        version_py = f"{pin['project']}/_version.py"
        contents[version_py] = _stamp_version(contents[version_py].decode(), pin["version"], version).encode()
        metadata = f"{up_info}/METADATA"
        contents[metadata] = _stamp_metadata(contents[metadata].decode(), pin["version"], version).encode()

        lines = [
            f"{pin['project']} {version}: upstream {pin['project']} {pin['version']} "
            f"({pin['wheel']}, sha256 {pin['sha256']}) modified by the nvflare model fork.",
            "",
            "Patched upstream files (each carries a one-line notice after its license header):",
        ]
        lines += [f"  {name}  <- patches/{', patches/'.join(touched[name])}" for name in sorted(patched)]
        lines += ["", "Changed by the build:", f"  {version_py}  (version stamp)", "", "Added files (overlay):"]
        lines += [f"  {name}" for name in overlay]
        lines += ["", "Overlay modules moved in this revision (before -> now):"]
        lines += [f"  {old} -> {new}" for old, new in MOVED_OVERLAY_MODULES.items()]
        modifications = ("\n".join(lines) + "\n").encode()

        stamp_time = zin.getinfo(version_py).date_time
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        wheel_name = f"{pin['project']}-{version}-py3-none-any.whl"
        part = out_dir / f".{wheel_name}.part"

        def entry(name, template=None, executable=False) -> zipfile.ZipInfo:
            if template is not None:
                info = zipfile.ZipInfo(name, template.date_time)
                info.external_attr = template.external_attr
                info.create_system = template.create_system
            else:
                info = zipfile.ZipInfo(name, stamp_time)
                info.external_attr = (0o100755 if executable else 0o100644) << 16
                info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            return info

        with zipfile.ZipFile(part, "w") as zout:
            wheel = overlay_module("wheel_record").WheelWriter(zout)

            def add(name, data, template=None, executable=False):
                wheel.add(entry(name, template, executable), data, compresslevel=9)

            by_name = {i.filename: i for i in entries}
            for info in entries:
                if info.filename.startswith(up_info + "/"):
                    continue
                add(info.filename, contents[info.filename], info)
            for name in [] if editable else overlay:
                source = OVERLAY_DIR.parent / name
                add(name, source.read_bytes(), executable=os.access(source, os.X_OK))
            if editable:
                for name, data in editable_files(version).items():
                    add(name, data)
            for info in entries:
                if not info.filename.startswith(up_info + "/") or info.filename.endswith("/RECORD"):
                    continue
                add(new_info + info.filename[len(up_info) :], contents[info.filename], info)
            add(f"{new_info}/MODIFICATIONS", modifications)
            wheel.write_record(entry(f"{new_info}/RECORD", by_name[f"{up_info}/RECORD"]), compresslevel=9)
        final = out_dir / wheel_name
        os.replace(part, final)
    log(f"built {final} (sha256 {sha256_of(final)})")
    return final


def build_sdist_file(out_dir) -> Path:
    """A source archive holding exactly what the wheel build reads."""
    import tarfile

    pin = load_pin()
    version = fork_version(pin)
    base = f"{pin['project']}-{version}"
    files = [f for f in SDIST_FILES if (ROOT / f).is_file()]
    files += [p.relative_to(ROOT).as_posix() for p in sorted(PATCHES_DIR.iterdir()) if p.is_file()]
    files += overlay_files()
    pkg_info = (
        f"Metadata-Version: 2.1\nName: {pin['project']}\nVersion: {version}\n"
        f"Summary: NVIDIA FLARE {pin['version']} with models as first-class job artifacts\nLicense: Apache-2.0\n"
    ).encode()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{base}.tar.gz"

    def normalize(ti):
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.mtime = 0
        ti.mode = 0o755 if ti.isdir() or ti.mode & 0o111 else 0o644  # exec bits shape the wheel
        return ti

    import gzip

    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info = normalize(tarfile.TarInfo(f"{base}/PKG-INFO"))
        info.size = len(pkg_info)
        tar.addfile(info, io.BytesIO(pkg_info))
        for rel in files:
            tar.add(ROOT / rel, arcname=f"{base}/{rel}", recursive=False, filter=normalize)
    final.write_bytes(raw.getvalue())
    return final


# ---------------------------------------------------------------------------------------
# Editable install (PEP 660)
# ---------------------------------------------------------------------------------------

EDITABLE_MODULE = "_nvflare_fork_editable"


def _editable_finder():
    """editable_finder.py (beside this file) as a module: the wheel's import hook, and its stamp function."""
    return _load_file_module("editable_finder", ROOT / "editable_finder.py")


def patches_stamp() -> str:
    """sha256 over what the patched files were built from (pin, series, patches)."""
    return _editable_finder().current_stamp(str(ROOT))


def editable_files(version: str) -> dict:
    """The finder module and the .pth that installs it at interpreter start."""
    finder = (ROOT / "editable_finder.py").read_text(encoding="utf-8")
    config = {"repo": str(ROOT), "stamp": patches_stamp(), "version": version}
    finder += f"\n\nCONFIG = {json.dumps(config)}\n"
    return {
        f"{EDITABLE_MODULE}.py": finder.encode(),
        f"__editable__.{EDITABLE_MODULE}.pth": f"import {EDITABLE_MODULE}; {EDITABLE_MODULE}.install()\n".encode(),
    }


# ---------------------------------------------------------------------------------------
# PEP 517 hooks
# ---------------------------------------------------------------------------------------


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    try:
        return build_wheel_file(wheel_directory).name
    except BuildError as e:
        raise SystemExit(f"nvflare fork build failed: {e}") from None


def get_requires_for_build_editable(config_settings=None):
    return []


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    try:
        return build_wheel_file(wheel_directory, editable=True).name
    except BuildError as e:
        raise SystemExit(f"nvflare fork build failed: {e}") from None


def build_sdist(sdist_directory, config_settings=None):
    return build_sdist_file(sdist_directory).name


# ---------------------------------------------------------------------------------------
# Script use
# ---------------------------------------------------------------------------------------


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["wheel", "sdist", "version", "fetch"])
    parser.add_argument("-o", "--out-dir", default=str(ROOT / "dist"))
    args = parser.parse_args(argv)
    try:
        if args.what == "wheel":
            print(build_wheel_file(args.out_dir))
        elif args.what == "sdist":
            print(build_sdist_file(args.out_dir))
        elif args.what == "version":
            print(fork_version(load_pin()))
        else:
            print(locate_upstream_wheel(log=lambda m: print(m, file=sys.stderr)))
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
