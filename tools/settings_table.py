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
"""Print (or --write into docs/settings.md) the settings table, generated from the code.

  .venv-test/bin/python tools/settings_table.py [--write]

Run it with any Python that has nvflare 2.9.0 (fork or upstream) and its dependencies
installed: the catalog (tools/settings_catalog.py) and the overlay modules it reads are
imported from this repo, so the table follows the working tree, not whatever build is
installed.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import forktool  # noqa: E402  (the repo's tools: doc regions, and setup.py's module loader)

ROOT = Path(__file__).resolve().parents[1]
REGION = forktool.SETTINGS_REGION
DOC, BEGIN, END = REGION.path, REGION.begin, REGION.end


def render() -> str:
    finder = forktool.build._editable_finder()
    sys.meta_path.insert(0, finder.OverlayFinder(str(ROOT), finder.current_stamp(str(ROOT))))
    import settings_catalog  # after the finder: it imports the overlay modules that read the settings

    missing = settings_catalog.unlisted_keys()
    if missing:
        raise SystemExit(f"settings defined in code but not listed in settings_catalog.SETTINGS: {missing}")
    return settings_catalog.render_table()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    table = render()
    if args.write:
        forktool.write_region(DOC, BEGIN, END, table, stamp=forktool.series_stamp())
        print(f"{DOC.relative_to(ROOT)} updated")
    else:
        print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
