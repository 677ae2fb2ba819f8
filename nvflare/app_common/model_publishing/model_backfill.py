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
"""Publish the models of a job that finished without them, from its stored workspace archive.

Jobs that ran before the fork (or with publishing off) have no ``MODEL_`` component; their
models are still inside the ``workspace`` archive the server stored when they ended. This
takes them from there, with the same record the live store writes (sha256, size, original
file name, format) plus ``"backfilled": true``, and stores them through the same job
manager calls (set_client_data, then model_signer.save_signed_record: signed like a live one).

Which files: the ones the job's own persistor wrote, as the job's own server config names
them (the config the job ran with, inside the archive; the submitted job's config when
the archive has none). The job process is gone, so the live publisher's FL-context
fallback cannot be repeated: a job whose persistor keeps no file known here is reported,
not guessed at. Every path is confined to the job's workspace inside the archive (no
absolute path, no ``..``), and the archive is read with safe_zip: a hostile archive is
refused whole, and only the model members are ever written out, one at a time, bounded
by their declared size.

What live publishing refuses (a symlink, a special file, a file with a second hard link:
run_folder_files) backfill refuses too, as far as the archive can tell (``member_origin``):
the fork's archive writer leaves links and special files out and marks hard-linked files
(storages/workspace_archive). An archive written without it (upstream, or a server before
the fork) holds a symlink's or hard link's target bytes as a regular member; such a model
is stored, and its signed statement says, under ``unchecked``, exactly what could not be
checked (the console and ``nvflare model verify`` show it).
"""

import json
import os
import posixpath
import shutil
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from nvflare.apis.job_def import JobMetaKey
from nvflare.apis.storage import WORKSPACE, DataTypes
from nvflare.apis.utils.component_block_hashes import BlockSha256Counter
from nvflare.apis.utils.component_records import record_of
from nvflare.app_common.model_publishing.model_publish_defs import KIND_BEST, KIND_GLOBAL
from nvflare.app_common.model_publishing.model_publish_settings import PublishSettings
from nvflare.app_common.model_publishing.model_signer import save_signed_record
from nvflare.app_common.model_publishing.run_folder_files import RULE
from nvflare.app_common.storages.workspace_archive import ARCHIVE_MARK, LINKED_MARK
from nvflare.fuel.utils.safe_zip import ArchiveRefused, SafeZip

SERVER_CONFIG = "config_fed_server.json"
CONFIG_LIMIT = 16 << 20
STAGING_DIR = ".model_backfill_staging"
DISK_MARGIN = 64 << 20

# Outcome of one job
BACKFILLED = "backfilled"
SKIPPED = "skipped"
NOT_FINISHED = "not finished"
NO_MODEL = "no model"
REFUSED = "refused"
FAILED = "failed"
IN_PROGRESS = "in progress"

# Two admins backfilling the same job must not both store it, but backfills of different
# jobs have nothing to share, so each job has its own claim. A claim is never waited for:
# a backfill runs in an admin command thread (shared with every message the server
# receives), so the second backfill of a job is answered IN_PROGRESS at once.
_claims_lock = threading.Lock()
_claimed = set()  # job ids being backfilled


@contextmanager
def _job_claim(job_id: str):
    """True while this caller holds the job's claim; False (at once) if another backfill holds it."""
    with _claims_lock:
        claimed = job_id not in _claimed
        _claimed.add(job_id)
    try:
        yield claimed
    finally:
        if claimed:
            with _claims_lock:
                _claimed.discard(job_id)


@dataclass
class ModelSource:
    kind: str
    member: Optional[str]  # path inside the archive; None when the config names an unsafe one
    file_name: str
    model_format: str
    problem: str = ""


@dataclass
class BackfillResult:
    job_id: str
    outcome: str
    message: str
    stored: List[dict] = field(default_factory=list)  # {component, member, size, sha256}

    def as_dict(self) -> dict:
        return {"job_id": self.job_id, "outcome": self.outcome, "message": self.message, "stored": self.stored}


# -- which files: the job's persistor, as its config names them ----------------------------
def _confined(base: str, value, what: str):
    """(archive member, problem): ``base/value`` as a path inside the job's workspace."""
    if not isinstance(value, str) or not value:
        return None, f"{what} is {value!r}, not a file name"
    if value.startswith("/") or "\\" in value or (len(value) > 1 and value[1] == ":"):
        return None, f"{what} {value!r} is an absolute path, outside the job's workspace"
    path = posixpath.normpath(posixpath.join(base, value))
    if path == ".." or path.startswith("../") or ".." in value.split("/"):
        return None, f"{what} {value!r} points outside the job's workspace"
    return path, ""


def _pt(args, app_dir):
    return [
        (
            KIND_GLOBAL,
            app_dir,
            args.get("global_model_file_name", "FL_global_model.pt"),
            "global_model_file_name",
            "pt_checkpoint",
        ),
        (
            KIND_BEST,
            app_dir,
            args.get("best_global_model_file_name", "best_FL_global_model.pt"),
            "best_global_model_file_name",
            "pt_checkpoint",
        ),
    ]


def _tf(args, app_dir):
    return [(KIND_GLOBAL, app_dir, args.get("save_name", "tf_model.weights.h5"), "save_name", "TensorFlow")]


def _np(args, app_dir):
    model_dir = args.get("model_dir", "models")
    return [(KIND_GLOBAL, "", _join(model_dir, args.get("model_name", "server.npy")), "model_dir/model_name", "np")]


def _np_file(args, app_dir):
    model_dir = args.get("model_dir", "models")
    return [
        (
            KIND_GLOBAL,
            "",
            _join(model_dir, args.get("last_global_model_file_name", "last_global_model.npy")),
            "model_dir/last_global_model_file_name",
            "np",
        ),
        (
            KIND_BEST,
            "",
            _join(model_dir, args.get("best_global_model_file_name", "best_global_model.npy")),
            "model_dir/best_global_model_file_name",
            "np",
        ),
    ]


def _join(folder, name):
    # os.path.join's rule, as the persistor applies it: an absolute name replaces the folder
    return posixpath.join(folder, name) if isinstance(folder, str) and isinstance(name, str) else name


# Persistor class name -> where it writes (relative to the app folder or the run folder).
PERSISTORS = {
    "PTFileModelPersistor": _pt,
    "TFModelPersistor": _tf,
    "NPModelPersistor": _np,
    "NPFileModelPersistor": _np_file,
}


def _class_name(component: dict) -> str:
    path = component.get("path") or component.get("name") or ""
    return str(path).rsplit(".", 1)[-1]


def model_sources(config: dict, app_dir: str):
    """([ModelSource], problem) for the job's persistor as ``config`` configures it."""
    components = [c for c in (config.get("components") or []) if isinstance(c, dict)]
    known = [c for c in components if _class_name(c) in PERSISTORS]
    if len(known) > 1:
        known = [c for c in known if c.get("id") == "persistor"] or known
    if len(known) != 1:
        classes = sorted({_class_name(c) for c in components}) or ["none"]
        what = "no persistor" if not known else f"{len(known)} persistors"
        return [], (
            f"its server config has {what} that backfill knows ({', '.join(PERSISTORS)}); its components: "
            f"{', '.join(classes)} (the live publisher's FL-context fallback needs the running job)"
        )
    comp = known[0]
    args = comp.get("args") if isinstance(comp.get("args"), dict) else {}
    sources = []
    for kind, base, value, what, fmt in PERSISTORS[_class_name(comp)](args, app_dir):
        member, problem = _confined(base, value, f"{_class_name(comp)} {what}")
        sources.append(
            ModelSource(kind, member, posixpath.basename(value) if isinstance(value, str) else "", fmt, problem)
        )
    return sources, ""


def server_app_dir(archive: SafeZip) -> Optional[str]:
    """The archive's server app folder (app_<server name>), found by its deployed server config."""
    found = sorted(
        name.split("/")[0]
        for name in archive.members
        if name.count("/") == 2 and name.startswith("app_") and name.endswith("/config/" + SERVER_CONFIG)
    )
    return found[0] if len(found) == 1 else None


def config_from_job_data(archive: SafeZip) -> Optional[dict]:
    """The server config of the submitted job (its ``data`` archive), when it has exactly one."""
    found = [n for n in archive.members if n.endswith("config/" + SERVER_CONFIG) and archive.is_file(n)]
    if len(found) != 1:
        return None
    return _parse_config(archive.read(found[0], CONFIG_LIMIT), found[0])


def _parse_config(data: bytes, where: str) -> dict:
    try:
        config = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ArchiveRefused(f"{where} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise ArchiveRefused(f"{where} is not a JSON object")
    return config


# -- what the archive can tell about a member's origin ------------------------------------
def member_origin(archive: SafeZip, member: str):
    """(refusal or "", unchecked sentences): live publishing's rule, applied as far as the archive allows."""
    if archive.comment != ARCHIVE_MARK:
        return "", [
            f"that {member} was a regular file of the job's run folder: this workspace archive was not written by "
            "the nvflare model fork, and such an archive holds a symlink's or a hard link's target as a regular "
            "file (live publishing refuses both)"
        ]
    if archive.member_comment(member) == LINKED_MARK:
        return (
            f"{member} had more than one hard link in the job's run folder (another name may lie outside it): {RULE}",
            [],
        )
    return "", []


def missing_member_note(archive: SafeZip, member: str) -> str:
    if archive.comment == ARCHIVE_MARK:
        return (
            f"{member} is not in the workspace archive (it leaves out the run folder's symlinks and special files, "
            "which live publishing refuses too)"
        )
    return f"{member} is not in the workspace archive"


# -- storing ------------------------------------------------------------------------------
def backfill_job(
    engine, job_manager, job, settings: PublishSettings, fl_ctx, open_component: Callable[[str], Optional[str]]
) -> BackfillResult:
    """Backfill one job. ``open_component(name)`` gives a readable path of the job's stored
    component ``name`` (or None when it has none); the caller cleans up after it."""
    job_id = job.job_id
    status = str(job.meta.get(JobMetaKey.STATUS.value, ""))
    if not status.startswith("FINISHED"):
        return BackfillResult(
            job_id, NOT_FINISHED, f"status {status or 'unknown'}: a job publishes its models when it ends"
        )
    wanted = {KIND_GLOBAL: settings.component_for(KIND_GLOBAL), KIND_BEST: settings.component_for(KIND_BEST)}
    with _job_claim(job_id) as claimed:
        if not claimed:
            return BackfillResult(job_id, IN_PROGRESS, "another backfill of this job is running: run the command again")
        have = set(job_manager.list_components(job_id, fl_ctx) or [])
        present = [c for c in wanted.values() if c in have]
        if present:
            return BackfillResult(job_id, SKIPPED, f"already has {', '.join(present)}")
        if WORKSPACE not in have:
            return BackfillResult(job_id, NO_MODEL, "no stored workspace archive to take models from")
        path = open_component(WORKSPACE)
        if not path:
            return BackfillResult(job_id, NO_MODEL, "no stored workspace archive to take models from")
        try:
            with SafeZip(path, label="workspace archive") as archive:
                sources, problem = _sources_for(archive, job_id, open_component)
                if not sources:
                    return BackfillResult(job_id, NO_MODEL, problem)
                return _store(engine, job_manager, job_id, archive, sources, wanted, fl_ctx)
        except ArchiveRefused as e:
            return BackfillResult(job_id, REFUSED, str(e))


def _sources_for(archive: SafeZip, job_id: str, open_component):
    app_dir = server_app_dir(archive)
    if app_dir:
        config_name = f"{app_dir}/config/{SERVER_CONFIG}"
        config = _parse_config(archive.read(config_name, CONFIG_LIMIT), f"workspace archive: {config_name}")
        return model_sources(config, app_dir)
    data_path = open_component("data")
    config = None
    if data_path:
        with SafeZip(data_path, label="submitted job") as data:
            config = config_from_job_data(data)
    if config is None:
        return [], f"neither the workspace archive nor the submitted job has one server config ({SERVER_CONFIG})"
    return model_sources(config, "app_server")


def _store(engine, job_manager, job_id, archive: SafeZip, sources, wanted, fl_ctx) -> BackfillResult:
    staging = os.path.join(engine.get_workspace().get_root_dir(), STAGING_DIR)
    os.makedirs(staging, exist_ok=True)
    stored, notes, refusals = [], [], []
    for src in sources:
        component = wanted[src.kind]
        if src.member is None:
            refusals.append(f"{component}: {src.problem}")
            continue
        if not archive.is_file(src.member):
            notes.append(f"{component}: {missing_member_note(archive, src.member)}")
            continue
        refusal, unchecked = member_origin(archive, src.member)
        if refusal:
            refusals.append(f"{component}: {refusal}")
            continue
        size = archive.size(src.member)
        free = shutil.disk_usage(staging).free
        if free < size + DISK_MARGIN:
            notes.append(f"{component}: not enough free disk space for {size} bytes ({free} free in {staging})")
            continue
        staged = os.path.join(staging, uuid.uuid4().hex)
        try:
            counter = BlockSha256Counter(size)
            sha, n = archive.extract_to(src.member, staged, counter)
            record = record_of(
                sha,
                n,
                src.file_name,
                src.model_format,
                **counter.fields(),
                kind=src.kind,
                transfer="backfill",
                hashed="store",
                backfilled=True,
                source=f"workspace:{src.member}",
            )
            name = component[len(DataTypes.MODEL.value) + 1 :]
            job_manager.set_client_data(job_id, staged, name, DataTypes.MODEL.value, fl_ctx)
            save_signed_record(engine, job_manager, job_id, component, record, fl_ctx, unchecked=unchecked)
        finally:
            if os.path.exists(staged):
                os.remove(staged)
        stored.append({"component": component, "member": src.member, "size": n, "sha256": sha})
        if unchecked:
            stored[-1]["unchecked"] = unchecked
    if stored:
        done = "; ".join(
            f"{s['component']} from {s['member']} ({s['size']} bytes, sha256 {s['sha256'][:12]}"
            + (", origin unchecked: see its provenance)" if s.get("unchecked") else ")")
            for s in stored
        )
        rest = "; ".join(refusals + notes)
        return BackfillResult(job_id, BACKFILLED, f"stored {done}" + (f"; not stored: {rest}" if rest else ""), stored)
    if refusals:
        return BackfillResult(job_id, REFUSED, "; ".join(refusals + notes))
    return BackfillResult(job_id, NO_MODEL, "; ".join(notes))
