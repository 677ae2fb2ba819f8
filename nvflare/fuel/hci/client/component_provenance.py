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
"""Admin-client side of model provenance: check the signature before the file is named, keep the proof.

component_transfer calls ``check_received`` after the size and sha256 matched the record
and before the temp file gets its final name, so a model whose signature or statement
does not hold never appears under a final name (the same rule as a sha256 mismatch). The
trust anchor is the admin kit's own ``rootCA.pem`` (the session's ``ca_cert``) and the
server's name in the kit (``server_identity``), never anything the server sent. After the rename, ``write_proof`` puts
``<file>.provenance.json`` beside the model, so the proof travels with it
(``nvflare model verify``).

How much is required is the admin kit's ``model_provenance`` setting (``fed_admin.json``,
``admin`` section; ``NVFLARE_MODEL_PROVENANCE`` overrides it for the console, the FLARE API
and ``nvflare job download``): ``any`` (the default) delivers a component without
provenance and says it is not signed and why (refusing would make every older model
undownloadable) and delivers a weaker signature saying it is weaker; ``signed`` refuses a
component without a verifying statement; ``strong`` also refuses a weaker one (the
server's TLS key signed it, model_provenance). A refusal keeps no file, like a sha256
mismatch. ``nvflare model verify`` always requires a proof; ``--strict`` requires a strong one.
"""

import json
import os
import tempfile
from typing import Optional, Tuple

from nvflare.apis.utils.model_provenance import (
    NOT_SIGNED,
    PROOF_SUFFIX,
    PROVENANCE,
    STATEMENT,
    WEAKER_REFUSED,
    ProvenanceRefused,
    is_signed,
    proof_document,
    signature_kind,
    unsigned_reason,
    verified_line,
    verify_provenance,
)

SETTING = "model_provenance"
ENV_VAR = "NVFLARE_MODEL_PROVENANCE"
ANY = "any"
SIGNED = "signed"
REQUIRE_STRONG = "strong"
LEVELS = (ANY, SIGNED, REQUIRE_STRONG)
KIT_CONFIG = "fed_admin.json"


def required_provenance(api) -> Tuple[str, str]:
    """(level, where it was set) for this admin kit; ValueError with the exact message if the value is bad."""
    value = os.environ.get(ENV_VAR)
    where = f"env {ENV_VAR}"
    if value is None:
        kit_config = os.path.join(os.path.dirname(os.path.abspath(str(getattr(api, "ca_cert", "") or ""))), KIT_CONFIG)
        where = f"{SETTING} in {kit_config}"
        try:
            with open(kit_config) as f:
                value = (json.load(f).get("admin") or {}).get(SETTING)
        except (OSError, ValueError, AttributeError):
            value = None
    if value is None:
        return ANY, "default"
    if value not in LEVELS:
        raise ValueError(f"invalid {where}: {value!r} must be one of {', '.join(LEVELS)}")
    return value, where


def check_received(api, component: str, job_id: str, record: dict, sha256: str, size: int) -> Tuple[Optional[str], str]:
    """(refusal or None, the line to show): verifies a signed record's provenance against the kit's root CA."""
    try:
        level, where = required_provenance(api)
    except ValueError as e:
        return str(e), ""
    provenance = record.get(PROVENANCE) if isinstance(record, dict) else None
    if not is_signed(provenance):
        if level != ANY:
            return f"{NOT_SIGNED}: {unsigned_reason(provenance)}; {level} provenance is required ({where})", ""
        return None, f"{NOT_SIGNED}: {unsigned_reason(provenance)}"
    ca_path = getattr(api, "ca_cert", None)
    try:
        with open(ca_path, "rb") as f:
            root_ca = f.read()
    except (OSError, TypeError) as e:
        return f"cannot check the signature: the admin kit's root CA ({ca_path}) is not readable ({e})", ""
    try:
        statement = verify_provenance(
            provenance,
            root_ca,
            sha256,
            size,
            component=component,
            job_id=job_id,
            server_identity=getattr(api, "server_identity", None) or "server",  # upstream AdminAPI's default
            require_strong=level == REQUIRE_STRONG,
        )
    except ProvenanceRefused as e:
        return str(e) + (f" ({where})" if e.check == WEAKER_REFUSED else ""), ""
    return None, verified_line(statement, signature_kind(provenance))


def proof_path(model_path: str) -> str:
    return model_path + PROOF_SUFFIX


def write_proof(model_path: str, record: dict) -> Optional[str]:
    """Write ``<model_path>.provenance.json`` for a signed record (atomically); its path, or None if unsigned."""
    provenance = record.get(PROVENANCE) if isinstance(record, dict) else None
    if not is_signed(provenance):
        return None
    target = proof_path(model_path)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(model_path) + ".provenance.part-", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(proof_document(provenance))
        os.replace(tmp, target)  # the model's name is new; a proof left by an older file of that name is stale
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    return target


def move_proof(old_model_path: str, new_model_path: str) -> None:
    """Keep the proof beside the model when a caller moves the model (``nvflare job download-component --force``)."""
    if os.path.exists(proof_path(old_model_path)):
        os.replace(proof_path(old_model_path), proof_path(new_model_path))


def proof_summary(model_path: str) -> dict:
    """{signature: line, provenance: proof path or None} for a model this client downloaded (and so verified)."""
    proof = proof_path(model_path)
    try:
        with open(proof, encoding="utf-8") as f:
            document = json.load(f)
        statement = json.loads(document[STATEMENT])
    except (OSError, ValueError, KeyError, TypeError):
        return {"signature": "not signed (no provenance came with it)", "provenance": None}
    return {"signature": verified_line(statement, signature_kind(document)), "provenance": proof}
