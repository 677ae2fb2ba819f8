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
"""Rehearse the next rebase against upstream's development head; regenerate docs/contributing/upstream-drift.md.

  python3 tools/upstream_drift.py --upstream-repo PATH [--ref main] [--write]

PATH is a git clone of https://github.com/NVIDIA/NVFlare. The patch series is replayed
(forktool's rebase planner, git 3-way merges) from the pinned wheel onto the source tree
of ``--ref``, and every upstream name the overlay imports is looked up statically in that
tree: modules and names that vanished, and functions whose parameters changed. Nothing in
the repo changes except, with --write, the generated part of docs/contributing/upstream-drift.md.
"""

import argparse
import ast
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import forktool  # noqa: E402
from forktool import build  # noqa: E402

ROOT = forktool.ROOT
REGION = forktool.DRIFT_REGION
DOC, BEGIN, END = REGION.path, REGION.begin, REGION.end


def export_source(repo: Path, ref: str, dest: Path, roots=("nvflare", "nvflight")):
    """The files under ``roots`` at ``ref`` (cat-file, so a clone missing other blobs works)."""
    listing = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--full-tree", ref, "--", *roots],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    entries = []
    for line in listing:
        meta, path = line.split("\t", 1)
        mode, kind, sha = meta.split()
        if kind == "blob" and mode != "120000":
            entries.append((mode, sha, path))
    batch = subprocess.Popen(
        ["git", "-C", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    for mode, sha, path in entries:
        batch.stdin.write(sha.encode() + b"\n")
        batch.stdin.flush()
        header = batch.stdout.readline().split()
        data = batch.stdout.read(int(header[2]))
        batch.stdout.read(1)
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if mode == "100755":
            target.chmod(0o755)
    batch.stdin.close()
    batch.wait()


# ---------------------------------------------------------------------------------------
# static import check
# ---------------------------------------------------------------------------------------


def module_file(root: Path, module: str):
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def top_level(path: Path) -> dict:
    """{name: parameter list or None} of what a module defines at top level."""
    names = {}

    def visit(body):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names[node.name] = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
            elif isinstance(node, ast.ClassDef):
                names[node.name] = None
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    for n in ast.walk(target):
                        if isinstance(n, ast.Name):
                            names[n.id] = None
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names[node.target.id] = None
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    names[(alias.asname or alias.name).split(".")[0]] = None
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(path.read_text(encoding="utf-8", errors="replace")).body)
    return names


def overlay_imports(overlay: Path):
    """(overlay file, upstream module, name or None) for each nvflare import of the overlay."""
    for path in sorted(overlay.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("nvflare"):
                for alias in node.names:
                    yield path, node.module, alias.name
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("nvflare"):
                        yield path, alias.name, None


def import_drift(old_root: Path, new_root: Path, overlay: Path) -> list:
    """Lines describing each upstream name the overlay imports that vanished or changed."""
    problems = {}
    for path, module, name in overlay_imports(overlay):
        if module_file(overlay.parent, module) and module_file(old_root, module) is None:
            continue  # one of our own overlay modules
        where = path.relative_to(overlay.parent).as_posix()
        old_file, new_file = module_file(old_root, module), module_file(new_root, module)
        if old_file is None:
            continue
        if new_file is None:
            problems.setdefault(f"module `{module}` is gone", set()).add(where)
            continue
        if name is None or name == "*" or module_file(overlay.parent, f"{module}.{name}"):
            continue  # a whole module, or one of our overlay modules imported from its package
        old_names, new_names = top_level(old_file), top_level(new_file)
        if name not in new_names and module_file(new_root, f"{module}.{name}") is None:
            problems.setdefault(f"`{module}.{name}` is gone", set()).add(where)
        elif old_names.get(name) is not None and new_names.get(name) is not None and old_names[name] != new_names[name]:
            change = f"`{module}.{name}` parameters changed: ({', '.join(old_names[name])}) -> ({', '.join(new_names[name])})"
            problems.setdefault(change, set()).add(where)
    return [f"{what} (imported by {', '.join(sorted(users))})" for what, users in sorted(problems.items())]


# ---------------------------------------------------------------------------------------


def report(repo: Path, ref: str) -> str:
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", ref], check=True, capture_output=True, text=True)
    commit = commit.stdout.strip()
    date = subprocess.run(
        ["git", "-C", str(repo), "log", "-1", "--format=%cs", commit], check=True, capture_output=True, text=True
    ).stdout.strip()
    pin = build.load_pin()
    with tempfile.TemporaryDirectory(prefix="upstream-drift-") as tmp:
        tmp = Path(tmp)
        tree = forktool.make_tree(tmp / "tree", log=lambda m: None)
        source = tmp / "source"
        export_source(repo, commit, source)
        onto = forktool.commit_files(
            tree, source, forktool.git(tree, "rev-parse", forktool.UPSTREAM_REF).strip(), f"upstream {ref} {commit}"
        )
        results = forktool.plan_rebase(tree, onto)
        old_root = tmp / "old"
        subprocess.run(
            ["git", "-C", str(tree), "worktree", "add", "-q", "--detach", str(old_root), "upstream"], check=True
        )
        drift = import_drift(old_root, source, build.OVERLAY_DIR)
    counts = {
        k: sum(1 for _, o, _ in results if o == k) for k in (forktool.UNCHANGED, forktool.MERGED, forktool.CONFLICTS)
    }
    lines = [
        f"Rehearsed against NVIDIA/NVFlare `{ref}` at `{commit}` ({date}), from the pinned "
        f"{pin['project']} {pin['version']} wheel.",
        "",
        f"Patches: {counts[forktool.UNCHANGED]} apply unchanged, {counts[forktool.MERGED]} merge automatically, "
        f"{counts[forktool.CONFLICTS]} conflict.",
        "",
        "| patch | outcome | conflicts |",
        "|---|---|---|",
    ]
    for name, outcome, detail in results:
        where = "; ".join(f"`{p}` {', '.join(h)}" for p, h in detail.items())
        lines.append(f"| `{name}` | {outcome} | {where} |")
    lines += ["", f"Upstream names the overlay imports that vanished or changed there: {len(drift)}."]
    lines += [f"- {d}" for d in drift]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream-repo", required=True, type=Path, help="a git clone of NVIDIA/NVFlare")
    parser.add_argument("--ref", default="main")
    parser.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    stamp = forktool.series_stamp()  # the series this run replays, before anything can change it
    text = report(args.upstream_repo, args.ref)
    print(text, end="")
    if args.write:
        forktool.write_region(DOC, BEGIN, END, text, stamp=stamp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
