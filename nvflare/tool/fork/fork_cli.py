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
"""``nvflare fork enable <server kit>``: the fork's one-time step on a kit provisioned before it.

``nvflare fork signing-key request|sign|install`` gives a server its dedicated
model-signing key (signing_key_cli).

A subcommand of ``nvflare`` (added by a one-line hook in cli.py) because the operator who
upgrades has just installed the fork and has ``nvflare`` on the PATH of that very Python;
``python -m nvflare.tool.fork.fork_cli enable <kit>`` does the same without the hook.
"""

import argparse
import sys

from nvflare.tool.fork import signing_key_cli

CMD_FORK = "fork"


def _define(parser):
    sub = parser.add_subparsers(title="fork subcommands", metavar="", dest="fork_sub_cmd")
    p = sub.add_parser("enable", help="enable model publishing in a server kit provisioned by upstream NVFlare")
    p.add_argument("kit", help="the server's kit folder (the one holding startup/ and local/)")
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    signing_key_cli.define(sub)
    return parser


def def_fork_cli_parser(sub_cmd) -> dict:
    parser = sub_cmd.add_parser(CMD_FORK, help="steps for running the model fork on existing kits")
    return {CMD_FORK: _define(parser)}


def handle_fork_cmd(args) -> int:
    from nvflare.tool.fork.kit_enable import KitRefused, enable_server_kit

    if getattr(args, "fork_sub_cmd", None) == signing_key_cli.CMD:
        code = signing_key_cli.handle(args)
        if code:
            sys.exit(code)
        return 0
    if getattr(args, "fork_sub_cmd", None) != "enable":
        print("usage: nvflare fork enable <server kit> [--dry-run]", file=sys.stderr)
        sys.exit(4)
    try:
        result = enable_server_kit(args.kit, dry_run=args.dry_run)
    except KitRefused as e:
        print(f"nothing changed: {e}", file=sys.stderr)
        sys.exit(1)
    if not result.changed:
        print(f"{result.resources}: model publishing is already enabled; nothing changed")
        return 0
    verb = "would change" if args.dry_run else "changed"
    print(f"{result.resources}: {verb}:")
    for change in result.changes:
        print(f"  - {change}")
    if not args.dry_run:
        print("restart the server for the change to take effect")
    return 0


def main(argv=None):
    parser = _define(argparse.ArgumentParser(prog="python -m nvflare.tool.fork.fork_cli"))
    return handle_fork_cmd(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
