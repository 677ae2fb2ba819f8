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
"""The overlay's modules keep upstream's layering: no import runs from a lower layer up, no cycles.

A hand-written check (farm-studio style) over the overlay's own modules and the imports
between them, module-level and lazy ones alike: a lazy import still ties the two modules
together, it only hides the tie from the reader.
"""

import ast
import collections
from pathlib import Path

import pytest

# Lowest first, as upstream's packages depend on each other. Everything else (nvflare.tool,
# nvflare.lighter) is above them all.
LAYERS = ("nvflare.fuel", "nvflare.apis", "nvflare.app_common", "nvflare.private")

# The one kind of upward import allowed, and why: the admin client lives in fuel (fuel/hci,
# fuel/flare_api, as upstream's, whose flare_api.py imports nvflare.apis.job_def) and checks
# what it downloads against the same rules the server stores by (component names, file
# names, records, provenance). Those rules live once, in nvflare.apis.utils, and are leaves:
# test_apis_utils_are_leaves keeps them free of anything above fuel.
ALLOWED_UP = {("nvflare.fuel.hci", "nvflare.apis.utils"), ("nvflare.fuel.flare_api", "nvflare.apis.utils")}


def layer(module: str) -> int:
    for rank, prefix in enumerate(LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return len(LAYERS)


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.fixture(scope="module")
def overlay(fork_build):
    """{dotted module name: source file} of every overlay module."""
    root = fork_build.OVERLAY_DIR.parent
    modules = {}
    for name in fork_build.overlay_files():
        if name.endswith(".py"):
            dotted = name[: -len(".py")].replace("/", ".")
            modules[dotted[: -len(".__init__")] if dotted.endswith(".__init__") else dotted] = root / name
    return modules


def imported_modules(module: str, source: Path, modules: dict) -> set:
    """The overlay modules ``module`` imports, anywhere in its code."""

    def resolve(name):
        while name:
            if name in modules:
                return name
            name = name.rpartition(".")[0]
        return None

    package = module if source.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {r for r in map(resolve, names) if r and r != module}
    return found


@pytest.fixture(scope="module")
def graph(overlay):
    return {m: imported_modules(m, f, overlay) for m, f in overlay.items()}


def test_the_check_sees_the_overlay(graph):
    assert len(graph) > 60
    assert "nvflare.app_common.model_publishing.run_folder_files" in graph["nvflare.app_common.widgets.job_model_store"]
    assert layer("nvflare.fuel.hci.job_component_defs") < layer("nvflare.private.fed.server.job_component_cmds")


def test_no_import_runs_from_a_lower_layer_up(graph):
    upward = sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if layer(a) < layer(b) and not any(within(a, lo) and within(b, hi) for lo, hi in ALLOWED_UP)
    )
    assert upward == [], f"imports from a lower layer up ({' < '.join(LAYERS)}): {upward}"


def test_apis_utils_are_leaves(graph):
    """The shared rules the admin client may import: nothing of theirs reaches above fuel."""
    above = sorted(
        f"{a} -> {b}" for a, t in graph.items() if within(a, "nvflare.apis.utils") for b in t if layer(b) > 1
    )
    assert above == []


def test_no_import_cycles(graph):
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert cycles == [], f"overlay modules that import each other: {cycles}"


def test_a_cycle_and_an_upward_import_are_caught(tmp_path):
    """The check itself can fail: two modules importing each other, one of them upward."""
    low_file, high_file = tmp_path / "low.py", tmp_path / "high.py"
    low_file.write_text("def f():\n    from nvflare.app_common.high import g\n")
    high_file.write_text("from nvflare.fuel.low import f\n")
    modules = {"nvflare.fuel.low": low_file, "nvflare.app_common.high": high_file}
    graph = {m: imported_modules(m, p, modules) for m, p in modules.items()}
    assert graph == {"nvflare.fuel.low": {"nvflare.app_common.high"}, "nvflare.app_common.high": {"nvflare.fuel.low"}}
    assert layer("nvflare.fuel.low") < layer("nvflare.app_common.high")
