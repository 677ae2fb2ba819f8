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
"""The store's one way to save a model's record: signed by the server parent, with the key it may use.

Live publishing (job_model_store) and the backfill (model_backfill) both save a record
through ``save_signed_record``, so every ``MODEL_`` component the server stores gets the
same provenance (model_provenance) and there is one place to change it. Only the server
parent signs, and only what it established itself: the job id (of the authenticated job
process, or the job the admin named), the job's name and submitter from the job store, the
component name from its own settings, and the stored bytes' sha256 and size - computed by
the store whenever it signs with the dedicated key (``hashes_itself``). What the job's own
process told it (file name, format, round, metric; and sha256/size when the store took
the job's pre-computed hash) is listed in the statement's ``job_reported``.

Which key: model_signing_key decides once, when the server starts (``announce``): the
dedicated model-signing key where no job process can read it, else the server's TLS key,
found the way the server finds it for its listener: ``fed_server.json`` in the startup kit
names ``ssl_private_key`` and ``ssl_cert`` (relative names are in the startup folder),
with upstream's provisioned defaults ``server.key`` / ``server.crt`` when it does not. A
server without them (a non-provisioned, insecure setup) stores the model unsigned and says
why in the record; signing never stops a model from being stored.
"""

import datetime
import logging
import os
import threading

from nvflare.apis.job_def import JobMetaKey
from nvflare.apis.storage import DataTypes
from nvflare.apis.utils.component_records import save_record
from nvflare.apis.utils.model_provenance import (
    FILE_NAME,
    FORMAT,
    METRIC_MODE,
    METRIC_NAME,
    METRIC_VALUE,
    PROVENANCE,
    ROUND,
    SHA256,
    SIZE,
    UNSIGNED,
    common_name,
    make_statement,
    sign_statement,
)
from nvflare.app_common.model_publishing.model_signing_key import (
    TLS,
    SigningKey,
    choose_signing_key,
    load_isolated_launchers,
    load_key_dir_setting,
    server_key_files,
)

# statement fields whose values come from the job's process or its config
JOB_REPORTED_FIELDS = (FILE_NAME, FORMAT, ROUND, METRIC_NAME, METRIC_VALUE, METRIC_MODE)

_logger = logging.getLogger(__name__)
_chosen = {}  # workspace root -> SigningKey, decided once per server parent
_chosen_lock = threading.Lock()


def _fork_version() -> str:
    try:
        import nvflare

        return str(nvflare.__version__)
    except Exception:  # the version is informative; never stop signing for it
        return "unknown"


def provenance_for(
    startup_dir: str, job_meta: dict, job_id: str, component: str, record: dict, signing_key=None, unchecked=()
) -> dict:
    """The provenance to store with ``record``: signed with ``signing_key`` (default: the TLS key), or {UNSIGNED: why}."""
    if signing_key is None:
        key_path, cert_path = server_key_files(startup_dir)
    else:
        key_path, cert_path = signing_key.key_path, signing_key.cert_path
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
        reported = JOB_REPORTED_FIELDS + ((SHA256, SIZE) if record.get("hashed") == "job" else ())
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
            unchecked=unchecked,
            job_reported=reported,
        )
        return sign_statement(statement, key_pem, cert_pem)
    except Exception as e:
        _logger.error(f"could not sign {component} of job {job_id}: {type(e).__name__}: {e}")
        return {UNSIGNED: f"signing failed on the server ({type(e).__name__})"}


def announce(engine, fl_ctx) -> SigningKey:
    """Decide (once per server parent) which key signs models; the caller logs ``message``."""
    from nvflare.app_common.model_publishing.model_publisher_injection import job_launchers

    workspace = engine.get_workspace()
    root, startup = workspace.get_root_dir(), workspace.get_startup_kit_dir()
    with _chosen_lock:
        if root in _chosen:
            return _chosen[root]
        try:
            chosen = choose_signing_key(
                root, startup, job_launchers(fl_ctx), load_key_dir_setting(), load_isolated_launchers()
            )
        except ValueError as e:
            key_path, cert_path = server_key_files(startup)
            chosen = SigningKey(TLS, key_path, cert_path, f"Model provenance is weaker on this server: {e}", True)
        _chosen[root] = chosen
        return chosen


def signing_key(engine) -> SigningKey:
    """The key announce chose (deciding now if the server has not announced it yet)."""
    root = engine.get_workspace().get_root_dir()
    chosen = _chosen.get(root)
    if chosen is not None:
        return chosen
    with engine.new_context() as fl_ctx:
        chosen = announce(engine, fl_ctx)
    (_logger.warning if chosen.warn else _logger.info)(chosen.message)
    return chosen


def hashes_itself(engine) -> bool:
    """True when the store must hash what it stores (never take the job's sha256): strong signatures."""
    return signing_key(engine).dedicated


def save_signed_record(engine, job_manager, job_id: str, component: str, record: dict, fl_ctx, unchecked=()) -> dict:
    """Sign (models only) and save ``record``; returns the record as saved.

    ``unchecked``: sentences saying what the server could not check about the bytes; they
    go into the signed statement (the console and ``nvflare model verify`` show them).
    """
    record = dict(record)
    record.pop(PROVENANCE, None)  # a caller's record never brings its own provenance
    if component.startswith(DataTypes.MODEL.value + "_"):
        job = job_manager.get_job(job_id, fl_ctx)
        startup_dir = engine.get_workspace().get_startup_kit_dir()
        record[PROVENANCE] = provenance_for(
            startup_dir, job.meta if job else {}, job_id, component, record, signing_key(engine), unchecked
        )
    save_record(job_manager, job_id, component, record, fl_ctx)
    return record
