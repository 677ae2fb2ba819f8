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
"""Upstream's own unit tests against upstream 2.9.0 and against the fork; report the difference.

  python3 tools/upstream_parity.py --upstream-repo PATH [--commit SHA] [--workers N] [--write-doc]

PATH is a git clone of https://github.com/NVIDIA/NVFlare. The released wheel does not ship
the tests, so they come from the commit the wheel was built from (its _version.py names
it) or, when the clone lacks that commit, from the commit whose nvflare/*.py files differ
least from the wheel's. One venv in .work/parity gets the pinned upstream wheel, runs
tests/unit_test, gets the fork wheel (same dependencies), and runs them again. The fork
must pass every test upstream passes: the report lists each test whose outcome differs.
Takes tens of minutes; not part of CI. --write-doc refreshes the result in
docs/contributing/upstream-parity.md.
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import setup as build  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
import forktool  # noqa: E402
import upstream_drift  # noqa: E402

WORK = ROOT / ".work" / "parity"
REGION = forktool.PARITY_REGION
DOC, DOC_BEGIN, DOC_END = REGION.path, REGION.begin, REGION.end
# What upstream's unit tests import beyond nvflare's own dependencies (its "test" extra,
# minus the heavy optional frameworks: tests needing those fail alike on both sides).
TEST_REQUIREMENTS = ["pytest>=8", "pytest-xdist", "pytest-timeout>=2.3", "torch==2.13.0", "pandas", "omegaconf"]


def run(cmd, **kw):
    print("+ " + " ".join(map(str, cmd)), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def git(repo: Path, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def wheel_sources(wheel: Path) -> dict:
    """{path: git blob sha} of the wheel's nvflare/*.py files (its _version.py aside)."""
    with zipfile.ZipFile(wheel) as z:
        return {
            n: blob_sha(z.read(n))
            for n in z.namelist()
            if n.startswith("nvflare/") and n.endswith(".py") and n != "nvflare/_version.py"
        }


def differing_files(repo: Path, commit: str, files: dict) -> int:
    tree = {}
    for line in git(repo, "ls-tree", "-r", commit, "nvflare").splitlines():
        meta, path = line.split("\t", 1)
        if path.endswith(".py") and path != "nvflare/_version.py":
            tree[path] = meta.split()[2]
    return sum(1 for p in set(tree) | set(files) if tree.get(p) != files.get(p))


def closest_commit(repo: Path, wheel: Path) -> tuple:
    """(commit, number of nvflare/*.py files that differ from the wheel's)."""
    files = wheel_sources(wheel)
    with zipfile.ZipFile(wheel) as z:
        version_py = z.read("nvflare/_version.py").decode()
    info = json.loads(re.search(r"version_json = '''\n(.*?)'''", version_py, re.S).group(1))
    exact = info.get("full-revisionid")
    probe = ["git", "-C", str(repo), "cat-file", "-e", f"{exact}^{{commit}}"]
    if exact and subprocess.run(probe, capture_output=True).returncode == 0:
        return exact, 0
    built = datetime.datetime.fromisoformat(info["date"])
    since = (built - datetime.timedelta(days=60)).isoformat()
    until = (built + datetime.timedelta(days=1)).isoformat()
    candidates = git(repo, "rev-list", "--all", f"--since={since}", f"--until={until}", "--", "nvflare").split()
    best = None
    for commit in candidates:
        diff = differing_files(repo, commit, files)
        if best is None or diff < best[1]:
            best = (commit, diff)
    if best is None:
        raise SystemExit(f"{repo} has no commit touching nvflare/ between {since} and {until}")
    return best


# Upstream's tests read files of the repository (skills/, dev_tools/, the root conftest.py)
# and import tests.integration_test; its package source must NOT be there, so that the
# tests import the installed nvflare.
NOT_EXTRACTED = ("nvflare", "nvflight", "examples", "docs", "web", "research", "3rdParty", "docker")


def extract_tests(repo: Path, commit: str, dest: Path):
    """The repository at commit without upstream's package source and the big folders."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    top = git(repo, "ls-tree", "--name-only", commit).split()
    upstream_drift.export_source(repo, commit, dest, roots=[t for t in top if t not in NOT_EXTRACTED])


def outcomes(junit: Path) -> dict:
    result = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        result[name] = "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds else "passed"
    return result


def run_tests(py: Path, src: Path, label: str, workers: str) -> dict:
    junit = WORK / f"{label}.xml"
    cmd = [str(py), "-m", "pytest", "tests/unit_test", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    cmd += ["--timeout=600", "--continue-on-collection-errors", "-o", "addopts="]
    if workers != "0":
        cmd += [f"--numprocesses={workers}", "--dist=loadgroup"]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    with open(WORK / f"{label}.log", "w") as log:
        subprocess.run(cmd, cwd=src, env=env, stdout=log, stderr=subprocess.STDOUT)
    return outcomes(junit)


def report(commit: str, diff_files: int, upstream: dict, fork: dict) -> str:
    def count(res, kind):
        return sum(1 for v in res.values() if v == kind)

    broken = sorted(t for t, v in upstream.items() if v == "passed" and fork.get(t) != "passed")
    fixed = sorted(t for t, v in fork.items() if v == "passed" and upstream.get(t) not in (None, "passed"))
    lines = [
        f"Upstream tests: `tests/unit_test` of NVIDIA/NVFlare at `{commit}` "
        + (
            "(the commit the 2.9.0 wheel was built from)."
            if diff_files == 0
            else f"(the clone lacks the wheel's own commit; in this one {diff_files} nvflare/*.py file(s) differ from the 2.9.0 wheel)."
        ),
        "",
        "| installed | tests | passed | failed | skipped |",
        "|---|---|---|---|---|",
    ]
    for label, res in (
        ("upstream nvflare 2.9.0", upstream),
        (f"the fork ({build.fork_version(build.load_pin())})", fork),
    ):
        lines.append(
            f"| {label} | {len(res)} | {count(res, 'passed')} | {count(res, 'failed')} | {count(res, 'skipped')} |"
        )
    lines += ["", f"Pass on upstream, not on the fork: {len(broken)}."]
    lines += [f"- `{t}`: {fork.get(t, 'missing')}" for t in broken]
    if fixed:
        lines += ["", f"Pass on the fork, not on upstream: {len(fixed)}."]
        lines += [f"- `{t}`" for t in fixed]
    return "\n".join(lines) + "\n"


def write_doc(text: str, stamp: str):
    forktool.write_region(DOC, DOC_BEGIN, DOC_END, text, stamp=stamp)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream-repo", required=True, type=Path, help="a git clone of NVIDIA/NVFlare")
    parser.add_argument("--commit", help="take the tests from this commit instead of the closest one")
    parser.add_argument("--workers", default="0", help="pytest-xdist workers (0: none)")
    parser.add_argument("--write-doc", action="store_true", help=f"put the result into {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)

    stamp = forktool.series_stamp()  # the series the fork wheel below is built from
    pin = build.load_pin()
    upstream_wheel = build.locate_upstream_wheel(pin, print)
    WORK.mkdir(parents=True, exist_ok=True)
    if args.commit:
        commit, diff_files = args.commit, differing_files(
            args.upstream_repo, args.commit, wheel_sources(upstream_wheel)
        )
    else:
        commit, diff_files = closest_commit(args.upstream_repo, upstream_wheel)
    print(f"tests from {commit} ({diff_files} differing file(s))", flush=True)
    src = WORK / "src"
    extract_tests(args.upstream_repo, commit, src)

    fork_wheel = build.build_wheel_file(WORK / "wheel", log=print)
    venv = WORK / "venv"
    py = venv / "bin" / "python"
    if not py.exists():
        run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run(pip + [str(upstream_wheel), *TEST_REQUIREMENTS])
    run(pip + ["--force-reinstall", "--no-deps", str(upstream_wheel)])  # also when a fork run came first
    upstream = run_tests(py, src, "upstream", args.workers)
    run(pip + ["--force-reinstall", "--no-deps", str(fork_wheel)])
    fork = run_tests(py, src, "fork", args.workers)

    text = report(commit, diff_files, upstream, fork)
    (WORK / "report.md").write_text(text)
    print(text)
    if args.write_doc:
        write_doc(text, stamp)
    broken = any(v == "passed" and fork.get(t) != "passed" for t, v in upstream.items())
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
