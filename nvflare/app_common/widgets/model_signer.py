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
"""The store's one way to save a model's record: signed with the server's provisioned key.

Live publishing (job_model_store) and the backfill (model_backfill) both save a record
through ``save_signed_record``, so every ``MODEL_`` component the server stores gets the
same provenance (model_provenance) and there is one place to change it.

The key and certificate are the server's own, found the way the server finds them for
its TLS listener: ``fed_server.json`` in the startup kit names ``ssl_private_key`` and
``ssl_cert`` (relative names are in the startup folder), with upstream's provisioned
defaults ``server.key`` / ``server.crt`` when it does not. A server without them (a
non-provisioned, insecure setup) stores the model unsigned and says why in the record;
signing never stops a model from being stored.
"""

import datetime
import json
import logging
import os

from nvflare.apis.job_def import JobMetaKey
from nvflare.apis.storage import DataTypes
from nvflare.apis.utils.component_records import save_record
from nvflare.apis.utils.model_provenance import PROVENANCE, UNSIGNED, common_name, make_statement, sign_statement

FED_SERVER_CONFIG = "fed_server.json"
DEFAULT_KEY = "server.key"
DEFAULT_CERT = "server.crt"

_logger = logging.getLogger(__name__)


def _fork_version() -> str:
    try:
        import nvflare

        return str(nvflare.__version__)
    except Exception:  # the version is informative; never stop signing for it
        return "unknown"


def server_key_files(startup_dir: str) -> tuple:
    """(key path, certificate path) the server's startup kit names (paths may not exist)."""
    key_name, cert_name = DEFAULT_KEY, DEFAULT_CERT
    try:
        with open(os.path.join(startup_dir, FED_SERVER_CONFIG)) as f:
            servers = json.load(f).get("servers") or []
        first = servers[0] if servers and isinstance(servers[0], dict) else {}
        key_name = first.get("ssl_private_key") or key_name
        cert_name = first.get("ssl_cert") or cert_name
    except (OSError, ValueError, AttributeError):
        pass
    return os.path.join(startup_dir, key_name), os.path.join(startup_dir, cert_name)


def provenance_for(startup_dir: str, job_meta: dict, job_id: str, component: str, record: dict) -> dict:
    """The provenance to store with ``record``: signed, or {UNSIGNED: why}."""
    key_path, cert_path = server_key_files(startup_dir)
    if not (os.path.isfile(key_path) and os.path.isfile(cert_path)):
        return {UNSIGNED: "the server has no provisioned key and certificate (startup/server.key, server.crt)"}
    try:
        from cryptography import x509

        with open(key_path, "rb") as f:
            key_pem = f.read()
        with open(cert_path, "rb") as f:
            cert_pem = f.read()
        cert = x509.load_pem_x509_certificate(cert_pem)
        meta = job_meta if isinstance(job_meta, dict) else {}
        statement = make_statement(
            project=common_name(cert.issuer),  # the root CA's name is the project's (upstream provisioning)
            server=common_name(cert.subject),
            job_id=job_id,
            job_name=str(meta.get(JobMetaKey.JOB_NAME.value) or ""),
            submitter=str(meta.get(JobMetaKey.SUBMITTER_NAME.value) or ""),
            component=component,
            record=record,
            stored_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            fork_version=_fork_version(),
        )
        return sign_statement(statement, key_pem, cert_pem)
    except Exception as e:
        _logger.error(f"could not sign {component} of job {job_id}: {type(e).__name__}: {e}")
        return {UNSIGNED: f"signing failed on the server ({type(e).__name__})"}


def save_signed_record(engine, job_manager, job_id: str, component: str, record: dict, fl_ctx) -> dict:
    """Sign (models only) and save ``record``; returns the record as saved."""
    record = dict(record)
    record.pop(PROVENANCE, None)  # a caller's record never brings its own provenance
    if component.startswith(DataTypes.MODEL.value + "_"):
        job = job_manager.get_job(job_id, fl_ctx)
        startup_dir = engine.get_workspace().get_startup_kit_dir()
        record[PROVENANCE] = provenance_for(startup_dir, job.meta if job else {}, job_id, component, record)
    save_record(job_manager, job_id, component, record, fl_ctx)
    return record
