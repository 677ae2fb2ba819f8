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
"""The one rule for job-store component names (nvflare model fork).

A component name becomes a file name inside the job's store folder, so upstream's
prefix-only check let ``ERRORLOG_x/../../escaped`` write outside the job. Storage, the
admin command, the model publisher and the admin clients all call this module, so a name
one of them accepts is accepted by all, and a hostile name never reaches a filesystem.
"""

import re
from typing import Iterable, Optional

# Components every job has; upstream names them in nvflare.apis.storage.
FIXED_COMPONENTS = ("data", "meta", "workspace")

# The store writes "<name>_<uuid4 hex>" while a component is being written, and file
# systems cap a name at 255 bytes: 200 leaves room for that suffix.
MAX_COMPONENT_NAME_LENGTH = 200

_SUFFIX = re.compile(r"[A-Za-z0-9._-]+")
_SHOWN = 80


def _known_prefixes(prefixes: Optional[Iterable[str]]) -> list:
    if prefixes is not None:
        return list(prefixes)
    # Imported here: storage.py imports this module to validate names.
    from nvflare.apis.storage import VALID_COMPONENT_PREFIXES

    return list(VALID_COMPONENT_PREFIXES)


def shown_name(name) -> str:
    """A name as safe to print: quoted, escapes visible, long names cut."""
    text = repr(name) if isinstance(name, str) else repr(type(name).__name__)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 5] + "...'"


def component_name_problem(name, prefixes: Optional[Iterable[str]] = None) -> Optional[str]:
    """Why ``name`` is not a valid component name, or None when it is."""
    prefixes = _known_prefixes(prefixes)
    rule = (
        f"a component is {', '.join(FIXED_COMPONENTS)} or <TYPE>_<name> with TYPE one of "
        f"{', '.join(prefixes)} and <name> made of letters, digits, '.', '-' and '_'"
    )
    if not isinstance(name, str) or not name:
        return f"component name must be a non-empty string: {rule}"
    if len(name) > MAX_COMPONENT_NAME_LENGTH:
        return f"component name is {len(name)} characters long; at most {MAX_COMPONENT_NAME_LENGTH} are allowed"
    if name in FIXED_COMPONENTS or name in prefixes:
        return None
    prefix = next((p for p in prefixes if name.startswith(p + "_")), None)
    if prefix is None:
        return f"invalid component name {shown_name(name)}: {rule}"
    suffix = name[len(prefix) + 1 :]
    if not _SUFFIX.fullmatch(suffix) or ".." in suffix:
        return f"invalid component name {shown_name(name)}: {rule}, without '..'"
    return None


def is_valid_component_name(name, prefixes: Optional[Iterable[str]] = None) -> bool:
    return component_name_problem(name, prefixes) is None


def check_component_name(name, prefixes: Optional[Iterable[str]] = None) -> str:
    """Return ``name`` if valid, else raise ValueError with the message a user sees."""
    problem = component_name_problem(name, prefixes)
    if problem:
        raise ValueError(problem)
    return name
