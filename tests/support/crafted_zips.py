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
"""Hostile zip archives built from a real one: each adds or changes one entry.

``members`` is {name: bytes} of a real archive (model_jobs.workspace_files); every
builder returns the bytes of a new archive and the message the reader must refuse it with.
"""

import io
import json
import stat
import warnings
import zipfile


def build(members: dict, extra=(), compression=zipfile.ZIP_STORED) -> bytes:
    """An archive of ``members`` then ``extra`` ((ZipInfo or name, bytes) pairs), as written."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name" is the point of one builder
        with zipfile.ZipFile(buf, "w", compression) as z:
            for name, data in members.items():
                z.writestr(name, data)
            for info, data in extra:
                z.writestr(info, data)
    return buf.getvalue()


def absolute_path(members):
    return (
        build(members, [("/etc/cron.d/evil", b"* * * * * root true\n")]),
        "entry '/etc/cron.d/evil' is an absolute path",
    )


def dot_dot(members):
    name = "app_server/../../../escape.pt"
    return build(members, [(name, b"x")]), f"entry {name!r} contains '..'"


def symlink(members, target_member: str):
    info = zipfile.ZipInfo(target_member)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    rest = {k: v for k, v in members.items() if k != target_member}
    return build(rest, [(info, b"/etc/shadow")]), f"entry {target_member!r} is a symbolic link"


def duplicate(members, target_member: str):
    return (
        build(members, [(target_member, b"a second, different model")]),
        f"entry {target_member!r} appears more than once",
    )


def bomb(members, size: int = 32 << 20):
    name = "app_server/bomb.bin"
    data = build(members, [(name, bytes(size))], compression=zipfile.ZIP_DEFLATED)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    ratio = info.file_size / info.compress_size
    return data, (
        f"entry {name!r} expands {ratio:.0f}x ({info.compress_size} to {info.file_size} bytes), "
        f"more than the limit of 200x (zip bomb?)"
    )


def persistor_path(members, config_member: str, args: dict):
    """The job's own config rewritten so its persistor writes ``args`` (e.g. a path outside)."""
    config = json.loads(members[config_member])
    for comp in config["components"]:
        if comp.get("id") == "persistor":
            comp.setdefault("args", {}).update(args)
    return build({**members, config_member: json.dumps(config).encode()})
