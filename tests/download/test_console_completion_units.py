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
"""fl_admin completion without a terminal: no readline, and the word under the cursor.

The real console on a real terminal is tests/download/test_console_completion.py (tmux).
"""

import subprocess
import sys

from nvflare.fuel.hci.client.console_completion import _words_before_cursor


def test_without_readline_the_console_imports_and_offers_nothing():
    code = (
        "import sys; sys.modules['readline'] = None\n"
        "import nvflare.fuel.hci.client.cli as cli\n"
        "from nvflare.fuel.hci.client import console_completion as c\n"
        "assert cli.readline is None and c.readline is None\n"
        "assert c.candidates(None, 'x', 0) is None and c.candidates(None, 'x', 1) is None\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout == "ok\n", done.stderr


def test_the_word_under_the_cursor_is_read_from_the_line():
    line = "download_job_component 3f2a-11 MODEL_g"
    assert _words_before_cursor(line, len(line)) == (["download_job_component", "3f2a-11"], "MODEL_g")
    assert _words_before_cursor(line, 30) == (["download_job_component"], "3f2a-11")
    assert _words_before_cursor("download_job_component  ", 25) == (["download_job_component"], "")
    assert _words_before_cursor("", 0) == ([], "")
