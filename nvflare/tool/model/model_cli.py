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
"""``nvflare model verify <file>``: check a downloaded model against its provenance, offline.

Whoever receives a model from the admin machine (a deployment team, a registry, an
auditor, a CI job) has the file, its ``<file>.provenance.json`` and the project's
``rootCA.pem`` (and the server's name, which an admin kit's ``fed_admin.json`` beside it
gives), and no FLARE system: this command needs nothing else (it reads those files and
uses model_provenance). It always requires a proof; ``--strict`` also refuses a weaker
one (signed with the server's TLS key, which job processes can read on POC and
process-launcher deployments), so a pipeline accepts only strong provenance. Exit codes for
pipelines: 0 verified, 1 the model or its provenance failed a check (the message says
which; a weaker signature under ``--strict``), 2 a file could not be read or the arguments
are wrong. ``python -m nvflare.tool.model.model_cli verify ...`` works
without the cli.py hook.
"""

import argparse
import json
import os
import sys

CMD_MODEL = "model"
DEFAULT_CA = "rootCA.pem"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _define(parser, standalone=False):
    sub = parser.add_subparsers(title="model subcommands", metavar="", dest="model_sub_cmd")
    p = sub.add_parser("verify", help="verify a downloaded model against its signed provenance (offline)")
    p.add_argument("file", help="the model file (as downloaded, e.g. MODEL_global_model.pt)")
    p.add_argument("--provenance", help="its provenance file (default: <file>.provenance.json)")
    p.add_argument("--ca", default=DEFAULT_CA, help=f"the project's root CA certificate (default: ./{DEFAULT_CA})")
    p.add_argument(
        "--server",
        help="the name of the project's server (default: server_identity from the fed_admin.json beside the CA, "
        "as in an admin kit's startup folder)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="require strong provenance: refuse a statement signed with the server's TLS key (weaker)",
    )
    if standalone:  # under ``nvflare``, the global ``--format json`` (anywhere on the line) sets args.format
        p.add_argument("--format", choices=("txt", "json"), default="txt", help="output format (default: txt)")
    return parser


def def_model_cli_parser(sub_cmd) -> dict:
    parser = sub_cmd.add_parser(CMD_MODEL, help="work with downloaded models (verify their provenance)")
    return {CMD_MODEL: _define(parser)}


def _read(path: str, what: str, binary=True):
    try:
        with open(path, "rb" if binary else "r") as f:
            return f.read()
    except OSError as e:
        raise _Usage(f"cannot read {what} {path}: {e.strerror or e}") from None


class _Usage(Exception):
    pass


def server_identity(ca: str, given: str = None) -> str:
    """The server's name: given, or the admin kit's (fed_admin.json beside rootCA.pem).

    Needed because a client site's certificate comes from the same root CA and looks like
    the server's (model_provenance.verify_provenance): the root CA alone cannot tell them apart.
    """
    if given:
        return given
    kit_config = os.path.join(os.path.dirname(os.path.abspath(ca)), "fed_admin.json")
    try:
        with open(kit_config) as f:
            name = json.load(f)["admin"]["server_identity"]
        if isinstance(name, str) and name:
            return name
    except (OSError, ValueError, KeyError, TypeError):
        pass
    raise _Usage(
        f"the project's server name is needed to tell its certificate from a client site's: pass --server <name> "
        f"(server_identity in an admin kit's fed_admin.json; no fed_admin.json with it beside {ca})"
    )


def verify_file(
    file: str, provenance_path: str = None, ca: str = DEFAULT_CA, server: str = None, strict: bool = False
) -> tuple:
    """(statement, kind) of a verified model file; ProvenanceRefused (check failed) or _Usage (unreadable)."""
    from nvflare.apis.utils.model_provenance import signature_kind, verify_provenance
    from nvflare.fuel.utils.file_digest import sha256_and_size

    provenance_path = provenance_path or file + ".provenance.json"
    if not os.path.isfile(file):
        raise _Usage(f"cannot read the model {file}: no such file")
    text = _read(provenance_path, "the provenance file", binary=False)
    try:
        provenance = json.loads(text)
    except ValueError as e:
        raise _Usage(f"the provenance file {provenance_path} is not JSON ({e})") from None
    root_ca = _read(ca, "the root CA")
    name = server_identity(ca, server)
    sha, size = sha256_and_size(file)
    statement = verify_provenance(provenance, root_ca, sha, size, server_identity=name, require_strong=strict)
    return statement, signature_kind(provenance)


def _summary(file: str, s: dict, kind: str) -> str:
    from nvflare.apis.utils.model_provenance import kind_notes, signer_line

    best = f", best by {s['metric_name']}={s['metric_value']:.6g}" if "metric_value" in s and "metric_name" in s else ""
    rnd = f", round {s['round']}" if "round" in s else ""
    return (
        f"OK {file}: {signer_line(s)}; {s.get('component')} of job {s.get('job_id')} "
        f"({s.get('job_name')!r} by {s.get('submitter')}){rnd}{best}; original file {s.get('file_name')}, "
        f"{s.get('size')} bytes, sha256 {s.get('sha256')}; "
        f"stored {s.get('stored_at')} by nvflare {s.get('fork_version')}; " + "; ".join(kind_notes(s, kind))
    )


def handle_model_cmd(args) -> int:
    from nvflare.apis.utils.model_provenance import STRONG, WEAKER_REASON, ProvenanceRefused, unchecked_of

    if getattr(args, "model_sub_cmd", None) != "verify":
        usage = (
            "usage: nvflare model verify <file> [--provenance P] [--ca rootCA.pem] [--server NAME] [--strict] "
            "[--format json]"
        )
        print(usage, file=sys.stderr)
        sys.exit(EXIT_USAGE)
    as_json = getattr(args, "format", "txt") in ("json", "jsonl")
    try:
        statement, kind = verify_file(args.file, args.provenance, args.ca, args.server, getattr(args, "strict", False))
    except (ProvenanceRefused, _Usage) as e:
        code = EXIT_FAILED if isinstance(e, ProvenanceRefused) else EXIT_USAGE
        if as_json:
            check = getattr(e, "check", "unreadable")
            print(json.dumps({"status": "failed", "file": args.file, "check": check, "reason": str(e)}))
        else:
            print(f"FAILED {args.file}: {e}", file=sys.stderr)
        sys.exit(code)
    if as_json:
        result = {"status": "ok", "file": args.file, "statement": statement, "kind": kind}
        if kind != STRONG:
            result["weaker_reason"] = WEAKER_REASON
        if unchecked_of(statement):
            result["unchecked"] = unchecked_of(statement)
        print(json.dumps(result, sort_keys=True))
    else:
        print(_summary(args.file, statement, kind))
    return EXIT_OK


def main(argv=None):
    parser = _define(argparse.ArgumentParser(prog="python -m nvflare.tool.model.model_cli"), standalone=True)
    return handle_model_cmd(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
