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
"""Round-trip patches/ through a git tree of the pinned upstream wheel.

The only way patches are edited (Electron's import/export workflow, Debian's gbp pq):

  tree    unpack the pinned wheel into .work/tree: one upstream commit, then one commit per patch
  export  write the commits after 'upstream' back as patches/ files and refresh patches/series
  check   rebuild the tree in a temp dir, re-export, fail if any patch file would change
          or if patches/ holds a file series does not list
  lint    every patch has a DEP-3 style header (Summary, a Feature of FEATURES, From/Author
          the maintainers, Forwarded matching patches/README.md's upstream candidates), series
          is in feature order, and a behaviour test names each patch
  changes print (or --write into patches/README.md) the feature map and the table of what
          each patch changes, made from the patch headers and FEATURES; check fails when
          patches/README.md's copy is stale
  check   also fails when a generated doc region (GENERATED_REGIONS: feature map, patch table,
          settings table, upstream drift and parity reports) carries the stamp of another
          patch series than patches/series, naming the command that regenerates it
  rebase  move the patch series onto a new upstream wheel with git's 3-way merges: report
          per patch (applies unchanged / merged automatically / conflicts), pin the new
          wheel in upstream.json, and leave .work/tree mid-rebase at the first conflict

Fetching and verifying the wheel and applying patches is setup.py's code, so this tool
and the build cannot disagree.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import setup as build  # noqa: E402  (the repo's setup.py: the build's own functions)

WORK_TREE = ROOT / ".work" / "tree"
UPSTREAM_REF = "upstream"
TESTS_DIR = ROOT / "tests"

# One identity and one clock for the tree, so re-imports produce the same commits.
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "nvflare fork tool",
    "GIT_AUTHOR_EMAIL": "forktool@localhost",
    "GIT_COMMITTER_NAME": "nvflare fork tool",
    "GIT_COMMITTER_EMAIL": "forktool@localhost",
}
_UPSTREAM_DATE = "2026-08-31T16:26:39-0700"

# Pinned so every developer's git config exports byte-identical patch files.
_EXPORT_CONFIG = [
    "core.abbrev=12",
    "core.quotePath=true",
    "core.autocrlf=false",
    "diff.noprefix=false",
    "diff.mnemonicPrefix=false",
    "diff.relative=false",
    "diff.renames=false",
    "diff.algorithm=myers",
    "diff.context=3",
    "diff.interHunkContext=0",
    "diff.suppressBlankEmpty=false",
    "diff.indentHeuristic=true",
    "format.signature=",
    "format.numbered=false",
    "format.thread=false",
    "format.coverLetter=false",
    "format.headers=",
    "format.suffix=.patch",
    "format.outputDirectory=",
]
_EXPORT_FLAGS = [
    "--keep-subject",
    "--no-stat",
    "--no-signature",
    "--zero-commit",
    "--full-index",
    "--no-renames",
    "--no-binary",
    "--no-notes",
    "--no-thread",
    "--stdout",
]

REQUIRED_HEADERS = ("Summary", "Feature", "Description", "Why-Not-Overlay", "Forwarded", "Author")

# Who the patches are from: one name, one address form, written into every patch's From:
# (by export) and Author: (by hand, checked by lint). The fork has no mailbox, so the address is
# empty rather than a made-up one.
MAINTAINERS = "nvflare model fork maintainers"
MAINTAINERS_FROM = f"{MAINTAINERS} <>"


class Feature:
    """One row of the feature map: what a group of patches adds, and where to read on."""

    def __init__(self, title: str, entry: str, doc: str):
        self.title = title  # what the feature is, in a few words
        self.entry = entry  # the overlay module a newcomer opens first
        self.doc = doc  # the user doc that explains it


# The feature catalog. A patch's 'Feature:' names one of these keys; patches/series is ordered
# by this catalog (then by the order within a feature), and the tables in patches/README.md
# are grouped by it.
FEATURES = {
    "storage": Feature(
        "MODEL_ components and the one component-name rule",
        "nvflare/apis/utils/component_names.py",
        "docs/model-publishing.md",
    ),
    "publishing": Feature(
        "publish each job's models into the job store",
        "nvflare/app_common/widgets/job_model_store.py",
        "docs/model-publishing.md",
    ),
    "download": Feature(
        "download one component: command, FLARE API, CLI",
        "nvflare/private/fed/server/job_component_cmds.py",
        "docs/download-component.md",
    ),
    "transport": Feature(
        "direct HTTPS route, bounded and faster admin downloads",
        "nvflare/fuel/f3/drivers/direct_download_route.py",
        "docs/download-component.md",
    ),
    "backfill": Feature(
        "models for jobs that finished before the fork",
        "nvflare/private/fed/server/model_backfill_cmds.py",
        "docs/upgrade.md",
    ),
    "console": Feature(
        "fl_admin completion of the fork's commands",
        "nvflare/fuel/hci/client/console_completion.py",
        "docs/download-component.md",
    ),
    "provenance": Feature(
        "signed model provenance, verified offline",
        "nvflare/apis/utils/model_provenance.py",
        "docs/provenance.md",
    ),
    "path-guard": Feature(
        "job config and job files never reach outside the job",
        "nvflare/app_common/path_guard/persistor_path_guard.py",
        "docs/security.md",
    ),
    "kits": Feature(
        "kits, images and VMs install the fork",
        "nvflare/lighter/impl/fork_image.py",
        "docs/containers.md",
    ),
}
PATCHES_README = build.PATCHES_DIR / "README.md"  # contributor docs: workflow + generated table
MAX_CHANGED_LINES = 12  # a patch is a hook; logic goes into the overlay
MAX_SUMMARY = 100  # one line in the generated table; the reasoning stays in Description


class ToolError(Exception):
    pass


def git_env(tree: Path, env_extra=None) -> dict:
    """setup.py's git environment for ``tree``, with the tool's identity."""
    return build.git_env(tree, {**_GIT_IDENTITY, **(env_extra or {})})


def git(tree: Path, *args, check=True, env_extra=None) -> str:
    proc = subprocess.run(["git", *args], cwd=tree, env=git_env(tree, env_extra), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise ToolError(f"git {' '.join(args)} failed:\n{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def munge_subject(subject: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", subject.lower()).strip("-")[:72] + ".patch"


# ---------------------------------------------------------------------------------------
# tree
# ---------------------------------------------------------------------------------------


def unpack_wheel(wheel: Path, dest: Path) -> None:
    """Write the wheel's files under ``dest`` with their modes (what git records of them)."""
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            if info.is_dir():
                continue
            target = dest / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(info))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)


def make_tree(dest: Path, patches_dir: Path = build.PATCHES_DIR, log=print) -> Path:
    pin = build.load_pin()
    wheel = build.locate_upstream_wheel(pin, log)
    dest.mkdir(parents=True)
    unpack_wheel(wheel, dest)
    git(dest, "init", "-q", "-b", "fork")
    for key, value in (("commit.gpgsign", "false"), ("core.autocrlf", "false"), ("am.keepcr", "true")):
        git(dest, "config", key, value)
    git(dest, "add", "-A")
    dates = {"GIT_AUTHOR_DATE": _UPSTREAM_DATE, "GIT_COMMITTER_DATE": _UPSTREAM_DATE}
    git(dest, "commit", "-q", "-m", f"upstream {pin['project']} {pin['version']} ({pin['wheel']})", env_extra=dates)
    git(dest, "tag", UPSTREAM_REF)
    names = build.read_series(patches_dir / "series")
    for name in names:
        patch = patches_dir / name
        if not patch.is_file():
            raise ToolError(f"patches/series names {name}, but it does not exist")
        out = subprocess.run(
            ["git", "am", "--keep-non-patch", "--committer-date-is-author-date", "--whitespace=nowarn", str(patch)],
            cwd=dest,
            env=git_env(dest),
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise ToolError(
                f"{name} does not apply; the tree stops before it (fix with git am --3way / --continue in "
                f"{dest}):\n{out.stderr.strip() or out.stdout.strip()}"
            )
    log(f"tree ready: {dest} ({len(names)} patch commit(s) on top of tag '{UPSTREAM_REF}')")
    return dest


def cmd_tree(args):
    dest = Path(args.dir)
    if dest.exists():
        if not args.force:
            raise ToolError(f"{dest} exists (it may hold unexported work); export it first or pass --force")
        shutil.rmtree(dest)
    make_tree(dest)


# ---------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------


def export_patches(tree: Path) -> list:
    """[(file name, content)] for each commit after the upstream tag, oldest first."""
    shas = git(tree, "rev-list", "--reverse", f"{UPSTREAM_REF}..HEAD").split()
    config = [arg for kv in _EXPORT_CONFIG for arg in ("-c", kv)]
    out = []
    for sha in shas:
        subject = git(tree, "log", "-1", "--format=%s", sha).strip()
        content = git(tree, *config, "format-patch", *_EXPORT_FLAGS, "-1", sha)
        # Every patch is from the fork's maintainers, whoever committed it in the tree.
        content = re.sub(r"^From: .*(?:\n .*)*$", f"From: {MAINTAINERS_FROM}", content, count=1, flags=re.M)
        name = munge_subject(subject)
        if any(name == n for n, _ in out):
            raise ToolError(f"two commits export to the same file name {name}: give them distinct subjects")
        out.append((name, content))
    return out


def write_patches(patches, patches_dir: Path):
    patches_dir.mkdir(parents=True, exist_ok=True)
    keep = {name for name, _ in patches}
    for stale in patches_dir.glob("*.patch"):
        if stale.name not in keep:
            stale.unlink()
    for name, content in patches:
        (patches_dir / name).write_bytes(content.encode("utf-8"))
    series = "# Applied in this order by setup.py; written by tools/forktool.py export.\n"
    series += "".join(f"{name}\n" for name, _ in patches)
    (patches_dir / "series").write_bytes(series.encode("utf-8"))


def cmd_export(args):
    tree = Path(args.dir)
    if not (tree / ".git").is_dir():
        raise ToolError(f"no tree at {tree}: run 'forktool.py tree' first")
    if any((tree / ".git" / d).exists() for d in ("rebase-merge", "rebase-apply", "CHERRY_PICK_HEAD")):
        raise ToolError(
            f"a rebase is in progress in {tree}: resolve the conflicts, git add the files and "
            f"git rebase --continue (until it is done), then export"
        )
    if git(tree, "status", "--porcelain").strip():
        raise ToolError(f"{tree} has uncommitted changes: commit them (one commit per patch) before export")
    patches = export_patches(tree)
    write_patches(patches, build.PATCHES_DIR)
    print(f"exported {len(patches)} patch(es) to {build.PATCHES_DIR}")


# ---------------------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------------------


def drift(patches_dir: Path = build.PATCHES_DIR) -> list:
    problems = []
    series = build.read_series(patches_dir / "series")
    listed = set(series)
    for f in sorted(patches_dir.iterdir()) if patches_dir.is_dir() else []:
        if f.name not in ("series", PATCHES_README.name) and f.name not in listed:
            problems.append(f"patches/{f.name} is not listed in patches/series")
    if len(series) != len(listed):
        problems.append("patches/series lists a patch twice")
    with tempfile.TemporaryDirectory(prefix="forktool-check-") as tmp:
        tree = make_tree(Path(tmp) / "tree", patches_dir, log=lambda m: None)
        exported = export_patches(tree)
    names = [name for name, _ in exported]
    if names != series:
        problems.append(f"series order/names {series} would be re-exported as {names}")
    for name, content in exported:
        current = patches_dir / name
        if not current.is_file() or current.read_bytes() != content.encode("utf-8"):
            problems.append(f"patches/{name} is not in canonical form (run tree + export and commit the result)")
    return problems


def cmd_check(args):
    problems = drift()
    readme = PATCHES_README.read_text(encoding="utf-8") if PATCHES_README.is_file() else ""
    if split_stamp(region(readme, FEATURES_REGION.begin, FEATURES_REGION.end))[1] != feature_map():
        problems.append("patches/README.md's feature map is stale (run forktool.py changes --write)")
    if split_stamp(region(readme, CHANGES_REGION.begin, CHANGES_REGION.end))[1] != changes_table():
        problems.append("patches/README.md's patch table is stale (run forktool.py changes --write)")
    problems += stale_regions()
    for p in problems:
        print(f"check: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"check: {len(build.read_series())} patch(es) apply and re-export byte-identically")
    return 0


# ---------------------------------------------------------------------------------------
# lint
# ---------------------------------------------------------------------------------------


def patch_header(text: str) -> dict:
    """DEP-3 style fields from the commit message body of a format-patch file."""
    body = text.split("\n---\n", 1)[0]
    fields, key = {}, None
    for line in body.splitlines():
        m = re.match(r"^([A-Za-z][A-Za-z-]*): ?(.*)$", line)
        if m and m.group(1) not in ("From", "Date", "Subject"):
            key = m.group(1)
            fields[key] = m.group(2).strip()
        elif key and line.startswith(" "):
            fields[key] += " " + line.strip()
        else:
            key = None
    return fields


def changed_lines(text: str) -> int:
    diff = text.split("\n---\n", 1)[1] if "\n---\n" in text else text
    return sum(
        1
        for line in diff.splitlines()
        if (line.startswith("+") and not line.startswith("+++"))
        or (line.startswith("-") and not line.startswith("---"))
    )


def lint_problems(patches_dir: Path = build.PATCHES_DIR, tests_dir: Path = TESTS_DIR) -> list:
    problems = []
    test_text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(tests_dir.rglob("*.py")))
    last_rank = 0
    for name in build.read_series(patches_dir / "series"):
        text = (patches_dir / name).read_text(encoding="utf-8")
        fields = patch_header(text)
        for required in REQUIRED_HEADERS:
            if not fields.get(required):
                problems.append(f"{name}: header lacks '{required}:'")
        sender = re.search(r"^From: (.*(?:\n .*)*)$", text.split("\nSubject:", 1)[0], re.M)
        if not sender or " ".join(sender.group(1).split()) != MAINTAINERS_FROM:
            problems.append(f"{name}: 'From:' must be '{MAINTAINERS_FROM}' (run tree + export)")
        if fields.get("Author") and fields["Author"] != MAINTAINERS:
            problems.append(f"{name}: 'Author:' must be '{MAINTAINERS}', not '{fields['Author']}'")
        feature = fields.get("Feature", "")
        if feature and feature not in FEATURES:
            problems.append(f"{name}: 'Feature: {feature}' is not in forktool's catalog ({', '.join(FEATURES)})")
        if re.search(r"^Summary: .*\n ", text, re.M) or len(fields.get("Summary", "")) > MAX_SUMMARY:
            problems.append(f"{name}: 'Summary:' must be one line of at most {MAX_SUMMARY} characters")
        forwarded = fields.get("Forwarded", "")
        if forwarded and not (forwarded in ("no", "not-needed") or forwarded.startswith("http")):
            problems.append(f"{name}: 'Forwarded:' must be no, not-needed or a URL, not '{forwarded}'")
        n = changed_lines(text)
        if n > MAX_CHANGED_LINES:
            problems.append(f"{name}: changes {n} lines (> {MAX_CHANGED_LINES}); move the logic into the overlay")
        if name not in test_text:
            problems.append(f"{name}: no test under tests/ names it (each patch needs a behaviour test)")
        if feature in FEATURES:
            rank = list(FEATURES).index(feature)
            if rank < last_rank:
                problems.append(
                    f"{name}: 'Feature: {feature}' comes after a later feature in patches/series "
                    f"(order series by the catalog: {', '.join(FEATURES)})"
                )
            last_rank = max(last_rank, rank)
    problems += candidate_problems(patches_dir)
    root = patches_dir.parent
    for key, feature in FEATURES.items():
        for path in (feature.entry, feature.doc):
            if not (root / path).is_file():
                problems.append(f"FEATURES['{key}'] names {path}, which does not exist (a module moved?)")
    return problems


CANDIDATES_HEADING = "## Upstream candidates"


def upstream_candidates(readme: Path = PATCHES_README) -> list:
    """The patch files the hand-written "Upstream candidates" list of patches/README.md names, in order."""
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if CANDIDATES_HEADING not in text:
        return []
    section = text.split(CANDIDATES_HEADING, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\d+\. `([^`]+\.patch)`", section, re.M)


def candidate_problems(patches_dir: Path) -> list:
    """'Forwarded: no' says upstream should take the patch: the candidates list names exactly those."""
    named = upstream_candidates(patches_dir / PATCHES_README.name)
    problems = []
    for name in build.read_series(patches_dir / "series"):
        forwarded = patch_header((patches_dir / name).read_text(encoding="utf-8")).get("Forwarded", "")
        if forwarded == "no" and name not in named:
            problems.append(f"{name}: 'Forwarded: no' but patches/README.md's upstream candidates do not name it")
        if forwarded != "no" and name in named:
            problems.append(f"{name}: named as an upstream candidate in patches/README.md but 'Forwarded: {forwarded}'")
    return problems


def cmd_lint(args):
    problems = lint_problems()
    for p in problems:
        print(f"lint: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"lint: {len(build.read_series())} patch(es) have headers and behaviour tests")
    return 0


# ---------------------------------------------------------------------------------------
# changes
# ---------------------------------------------------------------------------------------


def patch_rows(patches_dir: Path = build.PATCHES_DIR) -> list:
    """[(name, header fields, upstream files)] in series order."""
    rows = []
    for name in build.read_series(patches_dir / "series"):
        patch = patches_dir / name
        rows.append((name, patch_header(patch.read_text(encoding="utf-8")), build.patch_targets(patch)))
    return rows


def feature_map(patches_dir: Path = build.PATCHES_DIR) -> str:
    """The one-screen table: per feature, the upstream files its patches hook, where its code starts, its doc."""
    rows = patch_rows(patches_dir)
    lines = [
        "| feature | what | upstream files hooked | overlay entry module | doc |",
        "|---|---|---|---|---|",
    ]
    for key, feature in FEATURES.items():
        files = []
        for _, fields, targets in rows:
            if fields.get("Feature") == key:
                files += [t for t in targets if t not in files]
        hooked = ", ".join(f"`{f}`" for f in files) or "(none)"
        doc = f"[{feature.doc}](../{feature.doc})"
        lines.append(f"| `{key}` | {feature.title} | {hooked} | `{feature.entry}` | {doc} |")
    return "\n".join(lines) + "\n"


def changes_table(patches_dir: Path = build.PATCHES_DIR) -> str:
    """Markdown: per feature, each patch, the upstream files it hooks, its Summary and upstream status."""
    rows = patch_rows(patches_dir)
    out = []
    for key, feature in FEATURES.items():
        mine = [r for r in rows if r[1].get("Feature") == key]
        if not mine:
            continue
        out += ["", f"**`{key}`**: {feature.title}", "", "| patch | upstream file(s) | summary | forwarded |"]
        out.append("|---|---|---|---|")
        for name, fields, targets in mine:
            files = ", ".join(f"`{t}`" for t in targets)
            summary = fields.get("Summary", "").replace("|", "\\|")
            out.append(f"| `{name}` | {files} | {summary} | {fields.get('Forwarded', '')} |")
    return "\n".join(out).lstrip("\n") + "\n"


def write_region(path: Path, begin: str, end: str, body: str, name: str = None, stamp: str = None) -> None:
    """Replace what stands between the markers ``begin`` and ``end`` in the doc ``path`` with
    ``body``: how every generated table or report gets into its doc (the patch table, the
    settings table, the drift and parity reports). ``stamp`` (series_stamp() of the series the
    body was produced from) goes first, so check can tell a region made from another series.
    Exits naming the doc if a marker is missing."""
    text = path.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise SystemExit(f"{name or path} lacks the markers {begin!r} ... {end!r}")
    head, rest = text.split(begin, 1)
    stamped = f"{STAMP_PREFIX}{stamp} -->\n{body}" if stamp else body
    path.write_text(f"{head}{begin}\n{stamped}{end}{rest.split(end, 1)[1]}", encoding="utf-8")


# ---------------------------------------------------------------------------------------
# generated regions: each carries the stamp of the patch series it was produced from
# ---------------------------------------------------------------------------------------

STAMP_PREFIX = "<!-- produced from patch series "


def series_stamp(patches_dir: Path = build.PATCHES_DIR) -> str:
    """A short hash of what the series applies: the patch names in order and each patch's diff.

    The headers are left out: a reworded Summary changes no patched file, so it does not make
    the drift or parity reports (tens of minutes to regenerate) stale.
    """
    import hashlib

    names = build.read_series(patches_dir / "series")
    digest = hashlib.sha256()
    for name in names:
        text = (patches_dir / name).read_bytes()
        digest.update(name.encode("utf-8") + b"\0" + text[text.find(b"\ndiff --git ") :] + b"\0")
    return f"{digest.hexdigest()[:16]} ({len(names)} patches)"


def split_stamp(region_text: str):
    """(stamp or None, body) of a region's text as write_region wrote it."""
    if region_text is not None and region_text.startswith(STAMP_PREFIX):
        line, body = region_text.split("\n", 1)
        return line[len(STAMP_PREFIX) :].rsplit(" -->", 1)[0], body
    return None, region_text


class Region:
    """A generated region of a doc: where it is, its markers, and the command that regenerates it."""

    def __init__(self, doc: str, what: str, begin: str, end: str, command: str):
        self.doc, self.what, self.begin, self.end, self.command = doc, what, begin, end, command

    @property
    def path(self) -> Path:
        return ROOT / self.doc


CONTRIBUTING_DOCS = "docs/contributing"
DRIFT_REGION = Region(
    f"{CONTRIBUTING_DOCS}/upstream-drift.md",
    "the upstream drift report",
    "<!-- upstream drift: begin (generated by tools/upstream_drift.py --write) -->",
    "<!-- upstream drift: end -->",
    "python3 tools/upstream_drift.py --upstream-repo <NVFlare clone> --write",
)
PARITY_REGION = Region(
    f"{CONTRIBUTING_DOCS}/upstream-parity.md",
    "the upstream parity report",
    "<!-- upstream parity: begin (generated by tools/upstream_parity.py --write-doc) -->",
    "<!-- upstream parity: end -->",
    "python3 tools/upstream_parity.py --upstream-repo <NVFlare clone> --workers 2 --write-doc",
)
SETTINGS_REGION = Region(
    "docs/settings.md",
    "the settings table",
    "<!-- settings table: begin (generated by tools/settings_table.py --write) -->",
    "<!-- settings table: end -->",
    ".venv-test/bin/python tools/settings_table.py --write",
)
FEATURES_REGION = Region(
    "patches/README.md",
    "the feature map",
    "<!-- forktool features: begin (generated from patches/ and FEATURES in tools/forktool.py; "
    "run forktool.py changes --write) -->",
    "<!-- forktool features: end -->",
    "python3 tools/forktool.py changes --write",
)
CHANGES_REGION = Region(
    "patches/README.md",
    "the patch table",
    "<!-- forktool changes: begin (generated from patches/; edit the patch headers, then run forktool.py "
    "changes --write) -->",
    "<!-- forktool changes: end -->",
    "python3 tools/forktool.py changes --write",
)
GENERATED_REGIONS = (FEATURES_REGION, CHANGES_REGION, SETTINGS_REGION, DRIFT_REGION, PARITY_REGION)


def stale_regions(root: Path = None) -> list:
    """A problem per generated region produced from another series than patches/series now."""
    root = root or ROOT
    current = series_stamp(root / "patches")
    problems = []
    for r in GENERATED_REGIONS:
        path = root / r.doc
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        body = region(text, r.begin, r.end)
        if body is None:
            problems.append(f"{r.doc} lacks {r.what} (its markers); regenerate it: {r.command}")
            continue
        stamp, _ = split_stamp(body)
        if stamp != current:
            problems.append(
                f"{r.doc}: {r.what} was produced from patch series {stamp or '(no stamp)'}, "
                f"patches/series is now {current}; regenerate it: {r.command}"
            )
    return problems


def region(text: str, begin: str, end: str):
    """What stands between the markers in ``text`` (as write_region put it there), or None."""
    if begin not in text or end not in text:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0].lstrip("\n")


def cmd_changes(args):
    features, table = feature_map(), changes_table()
    if not args.write:
        print(features + "\n" + table, end="")
        return 0
    stamp = series_stamp()
    for r, body in ((FEATURES_REGION, features), (CHANGES_REGION, table)):
        write_region(PATCHES_README, r.begin, r.end, body, r.doc, stamp=stamp)
    print("patches/README.md feature map and patch table updated")
    return 0


# ---------------------------------------------------------------------------------------
# rebase
# ---------------------------------------------------------------------------------------

UNCHANGED = "applies unchanged"
MERGED = "merged automatically"
CONFLICTS = "conflicts"


def wheel_version(wheel: Path, project: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        metadata = [n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(metadata) != 1:
            raise ToolError(f"{wheel} is not a wheel (no single *.dist-info/METADATA)")
        text = z.read(metadata[0]).decode("utf-8")
    name = re.search(r"^Name: (.+)$", text, re.M)
    version = re.search(r"^Version: (.+)$", text, re.M)
    if not name or name.group(1).strip().lower() != project or not version:
        raise ToolError(f"{wheel} is not a {project} wheel")
    return version.group(1).strip()


def commit_files(tree: Path, files: Path, parent: str, message: str) -> str:
    """A commit holding exactly the files under ``files``, child of ``parent``; the work tree is not touched."""
    with tempfile.TemporaryDirectory(prefix="forktool-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_WORK_TREE": str(files)}
        git(tree, "add", "-A", env_extra=env)
        tree_id = git(tree, "write-tree", env_extra=env).strip()
    dates = {"GIT_AUTHOR_DATE": _UPSTREAM_DATE, "GIT_COMMITTER_DATE": _UPSTREAM_DATE}
    return git(tree, "commit-tree", tree_id, "-p", parent, "-m", message, env_extra=dates).strip()


def commit_wheel(tree: Path, wheel: Path, parent: str, message: str) -> str:
    """A commit holding exactly the wheel's files, child of ``parent``."""
    with tempfile.TemporaryDirectory(prefix="forktool-wheel-") as tmp:
        files = Path(tmp) / "files"
        unpack_wheel(wheel, files)
        return commit_files(tree, files, parent, message)


def conflict_hunks(worktree: Path) -> dict:
    """{file: ["lines A-B", ...]} of the conflict markers git left in each unmerged file."""
    out = {}
    for path in git(worktree, "diff", "--name-only", "--diff-filter=U").split():
        hunks, start = [], None
        text = (worktree / path).read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if line.startswith("<<<<<<< "):
                start = number
            elif line.startswith(">>>>>>> ") and start is not None:
                hunks.append(f"lines {start}-{number}")
                start = None
        out[path] = hunks or ["(no text conflict: a file added, deleted or renamed on one side)"]
    return out


def plan_rebase(tree: Path, onto: str) -> list:
    """Replay each patch commit onto ``onto`` in a scratch worktree: [(name, outcome, detail)].

    A conflicting patch is left out of the replay (its outcome is reported), so the patches
    after it are judged on the new upstream without it.
    """
    shas = git(tree, "rev-list", "--reverse", f"{UPSTREAM_REF}..HEAD").split()
    config = [arg for kv in _EXPORT_CONFIG for arg in ("-c", kv)]
    results = []
    with tempfile.TemporaryDirectory(prefix="forktool-rebase-") as tmp:
        scratch = Path(tmp) / "replay"
        git(tree, "worktree", "add", "-q", "--detach", str(scratch), onto)
        try:
            for sha in shas:
                name = munge_subject(git(tree, "log", "-1", "--format=%s", sha).strip())
                patch = git(tree, *config, "format-patch", *_EXPORT_FLAGS, "-1", sha)
                applies = subprocess.run(
                    ["git", "apply", "--check", "-"],
                    cwd=scratch,
                    input=patch,
                    capture_output=True,
                    text=True,
                    env=git_env(scratch),
                )
                picked = subprocess.run(
                    ["git", "cherry-pick", "--allow-empty", "--keep-redundant-commits", sha],
                    cwd=scratch,
                    capture_output=True,
                    text=True,
                    env=git_env(scratch),
                )
                if picked.returncode == 0:
                    results.append((name, UNCHANGED if applies.returncode == 0 else MERGED, {}))
                    continue
                results.append((name, CONFLICTS, conflict_hunks(scratch)))
                git(scratch, "cherry-pick", "--abort", check=False)
                git(scratch, "reset", "-q", "--hard", check=False)
        finally:
            git(tree, "worktree", "remove", "--force", str(scratch), check=False)
            git(tree, "worktree", "prune", check=False)
    return results


def cmd_rebase(args):
    wheel = Path(args.wheel).resolve()
    if not wheel.is_file():
        raise ToolError(f"{args.wheel} does not name a file")
    pin = build.load_pin()
    version = wheel_version(wheel, pin["project"])
    expected = f"{pin['project']}-{version}-py3-none-any.whl"
    if wheel.name != expected:
        raise ToolError(f"{wheel.name}: a {pin['project']} {version} wheel must be named {expected}")
    if version == pin["version"]:
        raise ToolError(f"upstream.json already pins {pin['project']} {version}")
    tree = Path(args.dir)
    if tree.exists():
        if not args.force:
            raise ToolError(f"{tree} exists (it may hold unexported work); export it first or pass --force")
        shutil.rmtree(tree)
    make_tree(tree, log=lambda m: None)
    git(tree, "config", "user.name", _GIT_IDENTITY["GIT_COMMITTER_NAME"])
    git(tree, "config", "user.email", _GIT_IDENTITY["GIT_COMMITTER_EMAIL"])
    old_upstream = git(tree, "rev-parse", UPSTREAM_REF).strip()
    new_upstream = commit_wheel(tree, wheel, old_upstream, f"upstream {pin['project']} {version} ({wheel.name})")
    results = plan_rebase(tree, new_upstream)

    # The new pin, and the wheel where the build looks for it.
    cached = build.cache_dir() / wheel.name
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, cached)
    new_pin = dict(pin, version=version, wheel=wheel.name, sha256=build.sha256_of(wheel), fork_revision=1)
    build.PIN_FILE.write_text(json.dumps(new_pin, indent=2) + "\n", encoding="utf-8")

    print(f"rebase: {len(results)} patch(es) from {pin['project']} {pin['version']} onto {version}")
    for name, outcome, detail in results:
        print(f"  {outcome:<21} {name}")
        for path, hunks in detail.items():
            print(f"      {path}: {', '.join(hunks)}")

    # The real rebase, in the tree: 'upstream' becomes the new release, 'upstream-old' the pinned one.
    git(tree, "tag", "-f", f"{UPSTREAM_REF}-old", old_upstream)
    git(tree, "tag", "-f", UPSTREAM_REF, new_upstream)
    git(
        tree,
        "rebase",
        "-q",
        "--onto",
        UPSTREAM_REF,
        f"{UPSTREAM_REF}-old",
        "fork",
        check=False,
        env_extra={"GIT_EDITOR": "true"},
    )
    in_progress = (tree / ".git" / "rebase-merge").exists() or (tree / ".git" / "rebase-apply").exists()
    print(f"upstream.json now pins {wheel.name} (fork_revision 1); the wheel is in {cached.parent}")
    if in_progress:
        print(
            f"the tree {tree} stopped at the first conflict. Resolve it with git: edit the files, "
            f"git add them, git rebase --continue (repeat), then: forktool.py export, changes --write, "
            f"regenerate what check names stale (settings table, drift and parity reports), check, lint, "
            f"and note the new base in CHANGELOG.md"
        )
        return 1
    print(
        "no conflicts: run forktool.py export, changes --write, regenerate what check names stale (settings "
        "table, drift and parity reports), check, lint, and note the new base in CHANGELOG.md"
    )
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tree", help="unpack the pinned wheel and import the patch series into a git tree")
    p.add_argument("--dir", default=str(WORK_TREE))
    p.add_argument("--force", action="store_true", help="replace an existing tree")
    p = sub.add_parser("export", help="write the tree's patch commits back to patches/")
    p.add_argument("--dir", default=str(WORK_TREE))
    sub.add_parser("check", help="fail if re-exporting would change patches/ or a patch is not in series")
    sub.add_parser("lint", help="fail if a patch lacks its header or its behaviour test")
    p = sub.add_parser("changes", help="the table of what each patch changes (from the patch headers)")
    p.add_argument("--write", action="store_true", help="update the generated table in patches/README.md")
    p = sub.add_parser("rebase", help="move the patch series onto a new upstream wheel (git 3-way merges)")
    p.add_argument("wheel", help="the new upstream wheel, e.g. nvflare-2.9.1-py3-none-any.whl")
    p.add_argument("--dir", default=str(WORK_TREE))
    p.add_argument("--force", action="store_true", help="replace an existing tree")
    args = parser.parse_args(argv)
    handler = {
        "tree": cmd_tree,
        "export": cmd_export,
        "check": cmd_check,
        "lint": cmd_lint,
        "changes": cmd_changes,
        "rebase": cmd_rebase,
    }[args.cmd]
    try:
        return handler(args) or 0
    except (ToolError, build.BuildError) as e:
        print(f"forktool: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
