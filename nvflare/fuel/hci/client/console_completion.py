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
"""TAB completion in fl_admin for the fork's job commands: job ids, then component names.

Upstream's console (a ``cmd.Cmd``) completes command names wherever the cursor is. For
``download_job_component``, ``list_job_component_info`` and ``backfill_job_model`` this
module completes their arguments instead: the job ids the user may use the command on,
most recent first, and for ``download_job_component`` the components of that job the
user may download. The server decides what may be offered (job_arg_completion): one
hidden command per TAB, whose answer is kept ``CACHE_SECONDS`` so that the second TAB
(which lists the matches) and the next keystrokes cost no round trip.

Conventions kept from cmd.Cmd and upstream's ``complete``: a unique match is inserted with
a space after it; several are listed by readline. The list comes in the server's order,
with a line about each job (name, status, submitted), instead of readline's alphabetical
columns. Readline splits words at ``-``, which every job id contains, so the word under
the cursor is read from the line buffer and only the part after readline's split is
returned.

Silent by design: without readline the console never calls this, and any failure - an
old server without the command, a lost connection, a refusal - just offers nothing.
"""

import re
import sys
import time
from typing import List, Optional

from nvflare.fuel.hci.cmd_arg_utils import join_args
from nvflare.fuel.hci.job_component_defs import CANDIDATES, COMPLETE_JOB_ARGS, COMPLETED_COMMANDS, JOBS, TRUNCATED
from nvflare.fuel.hci.proto import MetaKey, ProtoKey

try:
    import readline
except ImportError:  # pragma: no cover - platforms without readline
    readline = None

CACHE_SECONDS = 10.0
MAX_LISTED = 20  # lines the match list shows; the rest is counted
_WORD = re.compile(r"[A-Za-z0-9_.\-]*")


class _Cache:
    """Server answers by (command, kind, word), for CACHE_SECONDS."""

    def __init__(self):
        self.entries = {}

    def get(self, key):
        hit = self.entries.get(key)
        if hit and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        return None

    def fresh(self):
        now = time.monotonic()
        return [(k, v[1]) for k, v in self.entries.items() if now - v[0] < CACHE_SECONDS]

    def put(self, key, value):
        now = time.monotonic()
        self.entries = {k: v for k, v in self.entries.items() if now - v[0] < CACHE_SECONDS}
        self.entries[key] = (now, value)


_cache = _Cache()
_listed: List[dict] = []  # the candidates of the last completion, in the server's order
_last: Optional[List[str]] = None  # what state 0 returned: readline asks again for states 1, 2, ...


def _ask(api, command: str, kind: str, word: str) -> List[dict]:
    """The server's candidates (cached); [] on any failure."""
    key = (command, kind, word)
    found = _cache.get(key)
    if found is not None:
        return found
    if kind == JOBS:  # a full answer for a shorter prefix holds every match
        shorter = [v for (c, k, w), v in _cache.fresh() if (c, k) == (command, kind) and word.startswith(w)]
        for value in shorter:
            if value.complete:
                return _Answer([x for x in value if x["value"].startswith(word)], True)
    reply = api.server_execute(join_args([COMPLETE_JOB_ARGS, command, kind] + ([word] if word else [])))
    meta = reply.get(ProtoKey.META) or {} if isinstance(reply, dict) else {}
    items = meta.get(CANDIDATES) if meta.get(MetaKey.STATUS) == "ok" else None
    answer = _Answer(
        (
            [x for x in items if isinstance(x, dict) and isinstance(x.get("value"), str)]
            if isinstance(items, list)
            else []
        ),
        not meta.get(TRUNCATED),
    )
    _cache.put(key, answer)
    return answer


class _Answer(list):
    def __init__(self, items, complete: bool):
        super().__init__(items)
        self.complete = complete


def _words_before_cursor(line: str, endidx: int):
    """(the words before the one under the cursor, that word so far)."""
    before = line[:endidx]
    words = before.split()
    if before and not before[-1].isspace():
        return words[:-1], words[-1]
    return words, ""


def candidates(client, text: str, state: int = 0) -> Optional[List[str]]:
    """Completions of the word under the cursor, or None when the line is not one of these commands.

    Computed when readline asks for ``state`` 0; the later states of the same TAB get the same list.
    """
    global _last
    if state == 0:
        _last = _compute(client)
    return _last


def _compute(client) -> Optional[List[str]]:
    global _listed
    if readline is None:
        return None
    try:
        line, begidx, endidx = readline.get_line_buffer(), readline.get_begidx(), readline.get_endidx()
        previous, word = _words_before_cursor(line, endidx)
        kinds = COMPLETED_COMMANDS.get(previous[0]) if previous else None
        if kinds is None:
            readline.set_completion_display_matches_hook(None)
            return None  # a command name, or another command: upstream's completion
        position = len(previous) - 1
        if position >= len(kinds) or not _WORD.fullmatch(word):
            return []
        kind = kinds[position]
        what = previous[1] if kind != JOBS else word
        found = [x for x in _ask(client.api, previous[0], kind, what) if x["value"].startswith(word)]
        _listed = found
        readline.set_completion_display_matches_hook(lambda *args: _show(client))
        cut = begidx - (endidx - len(word))  # readline's word may start inside ours (at a '-')
        return [x["value"][cut:] + " " for x in found]
    except Exception:
        return []


def _show(client):
    """List the matches in the server's order (most recent job first), one line each, then redraw the prompt."""
    try:
        out = sys.stdout
        out.write("\n")
        for x in _listed[:MAX_LISTED]:
            out.write(f"{x['value']}  {x.get('info') or ''}".rstrip() + "\n")
        if len(_listed) > MAX_LISTED:
            out.write(f"... and {len(_listed) - MAX_LISTED} more: type more of it\n")
        out.write(client.prompt + readline.get_line_buffer())
        out.flush()
    except Exception:
        pass
