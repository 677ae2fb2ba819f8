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
"""The patch workflow: the repo's patches are canonical and linted; drift and gaps are caught."""

import re
import shutil
import subprocess
import sys

import pytest


@pytest.fixture
def repo_copy(repo, tmp_path):
    dest = tmp_path / "repo"
    dest.mkdir()
    for name in ("setup.py", "editable_finder.py", "upstream.json", "pyproject.toml", "README.md"):
        shutil.copy2(repo / name, dest / name)
    for folder in ("patches", "tools", "tests", "nvflare", "docs"):
        shutil.copytree(repo / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def forktool(root, *args):
    return subprocess.run(
        [sys.executable, str(root / "tools" / "forktool.py"), *args], capture_output=True, text=True, timeout=300
    )


def test_repo_patches_are_canonical(repo):
    proc = forktool(repo, "check")
    assert proc.returncode == 0, proc.stderr
    assert "apply and re-export byte-identically" in proc.stdout


def test_repo_patches_pass_lint(repo):
    proc = forktool(repo, "lint")
    assert proc.returncode == 0, proc.stderr


def test_tree_then_export_round_trips(repo_copy, fork_build):
    before = {p.name: p.read_bytes() for p in (repo_copy / "patches").iterdir()}
    assert forktool(repo_copy, "tree").returncode == 0
    tree = repo_copy / ".work" / "tree"
    log = subprocess.run(["git", "-C", str(tree), "log", "--format=%s"], capture_output=True, text=True).stdout
    assert log.splitlines()[-1] == "upstream nvflare 2.9.0 (nvflare-2.9.0-py3-none-any.whl)"
    assert len(log.splitlines()) == 1 + len(fork_build.read_series())
    proc = forktool(repo_copy, "export")
    assert proc.returncode == 0, proc.stderr
    assert {p.name: p.read_bytes() for p in (repo_copy / "patches").iterdir()} == before


def test_tree_refuses_to_overwrite_work(repo_copy):
    assert forktool(repo_copy, "tree").returncode == 0
    proc = forktool(repo_copy, "tree")
    assert proc.returncode == 1
    assert "exists (it may hold unexported work); export it first or pass --force" in proc.stderr


def test_check_catches_a_hand_edited_patch(repo_copy, fork_build):
    name = fork_build.read_series()[0]
    patch = repo_copy / "patches" / name
    patch.write_text(patch.read_text().replace("Forwarded: no\n", "Forwarded: no \n", 1))
    proc = forktool(repo_copy, "check")
    assert proc.returncode == 1
    assert f"check: patches/{name} is not in canonical form (run tree + export and commit the result)" in proc.stderr


def test_check_catches_a_patch_missing_from_series(repo_copy, fork_build):
    name = fork_build.read_series()[0]
    shutil.copy2(repo_copy / "patches" / name, repo_copy / "patches" / "stray.patch")
    proc = forktool(repo_copy, "check")
    assert proc.returncode == 1
    assert "check: patches/stray.patch is not listed in patches/series" in proc.stderr


def test_lint_catches_missing_header_and_missing_test(repo_copy, fork_build):
    name = fork_build.read_series()[0]
    patch = repo_copy / "patches" / name
    patch.write_text(patch.read_text().replace("Why-Not-Overlay:", "Reason:", 1))
    for test in (repo_copy / "tests").rglob("*.py"):
        test.write_text(test.read_text().replace(name, "the storage patch"))
    proc = forktool(repo_copy, "lint")
    assert proc.returncode == 1
    assert f"lint: {name}: header lacks 'Why-Not-Overlay:'" in proc.stderr
    assert f"lint: {name}: no test under tests/ names it (each patch needs a behaviour test)" in proc.stderr


def test_lint_requires_summary_feature_and_the_maintainers(repo_copy, fork_build):
    series = fork_build.read_series()
    first, second, third = (repo_copy / "patches" / n for n in series[:3])
    first.write_text(first.read_text().replace("\nSummary: ", "\nTagline: ", 1))
    text = second.read_text()
    feature = re.search(r"^Feature: (.*)$", text, re.M).group(1)
    text = text.replace(f"\nFeature: {feature}\n", "\nFeature: speed\n", 1)
    text = re.sub(
        r"^From: .*$", "From: Seed maintainers <maintainers@users.noreply.example>", text, count=1, flags=re.M
    )
    second.write_text(text.replace("\nAuthor: nvflare model fork maintainers\n", "\nAuthor: someone\n", 1))
    third.write_text(re.sub(r"^(Summary: .*)$", "\\1\n and a second line", third.read_text(), count=1, flags=re.M))
    proc = forktool(repo_copy, "lint")
    assert proc.returncode == 1
    catalog = "storage, publishing, download, transport, backfill, console, provenance, path-guard, kits"
    assert f"lint: {series[0]}: header lacks 'Summary:'" in proc.stderr
    assert f"lint: {series[1]}: 'Feature: speed' is not in forktool's catalog ({catalog})" in proc.stderr
    assert f"lint: {series[1]}: 'From:' must be 'nvflare model fork maintainers <>' (run tree + export)" in proc.stderr
    assert f"lint: {series[1]}: 'Author:' must be 'nvflare model fork maintainers', not 'someone'" in proc.stderr
    assert f"lint: {series[2]}: 'Summary:' must be one line of at most 100 characters" in proc.stderr


def test_lint_catches_a_feature_naming_a_moved_module(repo_copy):
    (repo_copy / "nvflare" / "fuel" / "hci" / "client" / "console_completion.py").unlink()
    proc = forktool(repo_copy, "lint")
    assert proc.returncode == 1
    assert (
        "lint: FEATURES['console'] names nvflare/fuel/hci/client/console_completion.py, which does not exist "
        "(a module moved?)"
    ) in proc.stderr


def test_lint_requires_series_in_feature_order(repo_copy, fork_build):
    series = fork_build.read_series()
    assert series[-1].startswith("deploy-prepare"), "the series ends with the kits feature"
    moved = [series[-1], *series[:-1]]
    (repo_copy / "patches" / "series").write_text("".join(f"{n}\n" for n in moved))
    proc = forktool(repo_copy, "lint")
    assert proc.returncode == 1
    catalog = "storage, publishing, download, transport, backfill, console, provenance, path-guard, kits"
    assert (
        f"lint: {series[0]}: 'Feature: storage' comes after a later feature in patches/series "
        f"(order series by the catalog: {catalog})"
    ) in proc.stderr


def test_repo_patches_are_from_the_maintainers_and_grouped(repo, fork_build):
    names = fork_build.read_series()
    features = [re.search(r"^Feature: (.*)$", (repo / "patches" / n).read_text(), re.M).group(1) for n in names]
    download = [i for i, f in enumerate(features) if f == "download"]
    assert download == list(range(download[0], download[-1] + 1)), "the download patches read as one block"
    for name in names:
        text = (repo / "patches" / name).read_text()
        assert "\nFrom: nvflare model fork maintainers <>\n" in text
        assert ".example>" not in text.split("\ndiff --git", 1)[0], "no placeholder address"


def test_lint_catches_a_patch_that_is_not_a_hook(repo_copy, fork_build):
    name = fork_build.read_series()[0]
    patch = repo_copy / "patches" / name
    text = patch.read_text()
    extra = "".join(f"+# line {i}\n" for i in range(20))
    patch.write_text(text.replace('+    MODEL = "MODEL"\n', '+    MODEL = "MODEL"\n' + extra, 1))
    proc = forktool(repo_copy, "lint")
    assert proc.returncode == 1
    assert f"lint: {name}: changes 30 lines (> 12); move the logic into the overlay" in proc.stderr


def test_readme_patch_table_is_generated_and_checked(repo_copy, fork_build):
    name = fork_build.read_series()[0]
    table = forktool(repo_copy, "changes").stdout
    assert table.splitlines()[0] == "| feature | what | upstream files hooked | overlay entry module | doc |"
    assert "| `storage` | MODEL_ components and the one component-name rule | `nvflare/apis/storage.py` |" in table
    assert "**`download`**: download one component: command, FLARE API, CLI" in table
    assert f"| `{name}` | `nvflare/apis/storage.py` | MODEL_ components are valid;" in table
    readme = repo_copy / "patches" / "README.md"
    text = readme.read_text()
    assert all(line in text for line in table.splitlines()), "patches/README.md carries the generated tables"
    assert "forktool changes" not in (repo_copy / "README.md").read_text(), "the user README has no copy"
    readme.write_text(readme.read_text().replace(f"| `{name}` |", "| `renamed.patch` |"))
    proc = forktool(repo_copy, "check")
    assert proc.returncode == 1
    assert "check: patches/README.md's patch table is stale (run forktool.py changes --write)" in proc.stderr
    assert forktool(repo_copy, "changes", "--write").returncode == 0
    assert forktool(repo_copy, "check").returncode == 0


def test_feature_map_is_generated_and_checked(repo_copy):
    readme = repo_copy / "patches" / "README.md"
    text = readme.read_text()
    assert text.index("<!-- forktool features: begin") < text.index("## Upstream candidates")
    assert text.index("## Upstream candidates") < text.index("<!-- forktool changes: begin")
    readme.write_text(text.replace("| `kits` | kits, images and VMs", "| `kits` | images", 1))
    proc = forktool(repo_copy, "check")
    assert proc.returncode == 1
    assert "check: patches/README.md's feature map is stale (run forktool.py changes --write)" in proc.stderr


def test_lint_keeps_upstream_candidates_and_forwarded_in_agreement(repo_copy, fork_build):
    readme = repo_copy / "patches" / "README.md"
    first = fork_build.read_series()[0]
    assert first.startswith("storage-model-data-type"), "the path-traversal fix is the first candidate"
    text = readme.read_text()
    assert text.split("## Upstream candidates", 1)[1].split("\n1. `", 1)[1].startswith(first)
    deploy = next(n for n in fork_build.read_series() if n.startswith("deploy-prepare"))
    readme.write_text(text.replace(f"1. `{first}`", f"1. `{deploy}`", 1))
    proc = forktool(repo_copy, "lint")
    assert proc.returncode == 1
    assert f"lint: {first}: 'Forwarded: no' but patches/README.md's upstream candidates do not name it" in proc.stderr
    assert (
        f"lint: {deploy}: named as an upstream candidate in patches/README.md but 'Forwarded: not-needed'"
    ) in proc.stderr


REGENERATE = {
    "docs/contributing/upstream-drift.md": (
        "the upstream drift report",
        "python3 tools/upstream_drift.py --upstream-repo <NVFlare clone> --write",
    ),
    "docs/contributing/upstream-parity.md": (
        "the upstream parity report",
        "python3 tools/upstream_parity.py --upstream-repo <NVFlare clone> --workers 2 --write-doc",
    ),
    "docs/settings.md": ("the settings table", ".venv-test/bin/python tools/settings_table.py --write"),
}


def series_stamp(root):
    proc = subprocess.run(
        [sys.executable, "-c", "import forktool; print(forktool.series_stamp())"],
        cwd=root / "tools",
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize("doc", sorted(REGENERATE))
def test_check_names_a_region_produced_from_another_series(repo_copy, doc):
    current = series_stamp(repo_copy)
    path = repo_copy / doc
    text = path.read_text()
    assert f"<!-- produced from patch series {current} -->" in text, f"{doc} is stamped with the current series"
    path.write_text(text.replace(current, "0123456789abcdef (18 patches)", 1))
    proc = forktool(repo_copy, "check")
    assert proc.returncode == 1
    what, command = REGENERATE[doc]
    assert (
        f"check: {doc}: {what} was produced from patch series 0123456789abcdef (18 patches), "
        f"patches/series is now {current}; regenerate it: {command}"
    ) in proc.stderr


def test_the_series_stamp_follows_the_diffs_not_the_headers(repo_copy, fork_build):
    before = series_stamp(repo_copy)
    assert before.endswith(f" ({len(fork_build.read_series())} patches)")
    patch = repo_copy / "patches" / fork_build.read_series()[0]
    text = patch.read_text()
    patch.write_text(text.replace("\nSummary: ", "\nSummary: Reworded. ", 1))
    assert series_stamp(repo_copy) == before, "a header change leaves the reports valid"
    patch.write_text(text.replace('+    MODEL = "MODEL"\n', '+    MODEL = "MODEL"  # changed\n', 1))
    assert series_stamp(repo_copy) != before
