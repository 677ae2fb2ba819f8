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
"""Every setting the fork reads, in one list: docs/settings.md is generated from it.

Keys and defaults come from the modules that read the settings, so the table cannot
disagree with the code; the meaning column is written here. A new setting gets one
entry below, then ``python tools/settings_table.py --write`` (tests/test_settings_table.py
fails while the table is stale or a setting key of those modules is missing here).
"""

from dataclasses import dataclass

from nvflare.app_common.widgets import model_publish_settings as publish
from nvflare.app_common.widgets import persistor_path_guard as persistor_guard
from nvflare.fuel.f3.streaming.file_downloader import DEFAULT_CHUNK_SIZE
from nvflare.fuel.hci.server import download_settings as download

SERVER = "server `local/resources.json`"
SERVER_SET = "server `local/resources.json` or `--set`"
ADMIN_KIT = "admin kit `startup/fed_admin.json`, `admin` section"

# Modules whose setting keys must all be listed (upper-case str constants ending in the key).
SETTINGS_MODULES = (download, publish, persistor_guard)


@dataclass(frozen=True)
class Setting:
    key: str
    where: str
    default: str
    meaning: str
    env: bool = True  # NVFLARE_<KEY> overrides it (ConfigService)

    @property
    def env_var(self) -> str:
        return download.env_var_name(self.key) if self.env else ""


_DEFAULTS = publish.PublishSettings()

SETTINGS = (
    Setting(
        download.ADMIN_DOWNLOAD_TIMEOUT,
        SERVER_SET,
        "upstream's: `max(admin_timeout, session idle timeout + monitor interval)` = 1805 s",
        f"inactivity timeout (s, >= {download.MIN_TIMEOUT:g}) of an admin download transaction "
        "(`download_job`, `download_job_components`, `download_job_component`); on expiry the server "
        "deletes its files",
    ),
    Setting(
        download.ADMIN_DOWNLOAD_CHUNK_SIZE,
        SERVER_SET,
        f"{DEFAULT_CHUNK_SIZE} (upstream's)",
        f"bytes per chunk of `download_job` and `download_job_components` ({download.MIN_CHUNK_SIZE} - "
        f"{download.MAX_CHUNK_SIZE}); `download_job_component` uses one HTTPS response or 1 MiB ranges",
    ),
    Setting(
        download.ADMIN_DOWNLOAD_DIRECT,
        SERVER_SET,
        "`true`",
        "`true`: downloads send each file as one HTTPS response on the server's listener (same port and "
        "certificates); `false`: only the admin session's messages (ranges, upstream's DownloadService)",
    ),
    Setting(
        download.ADMIN_DOWNLOAD_SESSION_LIMIT,
        SERVER_SET,
        f"{download.DEFAULT_SESSION_LIMIT}",
        f"open downloads (`download_job`, `download_job_components`, `download_job_component`) per admin "
        f"session (1 - {download.MAX_LIMIT}); a command beyond it is refused with the reason and audited",
    ),
    Setting(
        download.ADMIN_DOWNLOAD_SERVER_LIMIT,
        SERVER_SET,
        f"{download.DEFAULT_SERVER_LIMIT}",
        f"open downloads on the whole server (1 - {download.MAX_LIMIT}); a command beyond it is refused with "
        "the reason and audited",
    ),
    Setting(
        download.ADMIN_DOWNLOAD_USER_LIMIT,
        SERVER_SET,
        f"{download.DEFAULT_USER_LIMIT}",
        f"open downloads per admin account (user name) across all its sessions (1 - {download.MAX_LIMIT}); "
        "a command beyond it is refused with the reason and audited, so one account cannot fill the server limit",
    ),
    Setting(
        download.ADMIN_SESSION_USER_LIMIT,
        SERVER_SET,
        f"{download.DEFAULT_SESSION_USER_LIMIT}",
        f"admin sessions one account (user name) may hold (1 - {download.MAX_LIMIT}); beyond it the account's "
        "least recently active sessions are closed (their downloads cancelled, the client told why)",
    ),
    Setting(
        download.ADMIN_DOWNLOAD_RESPONSE_TIMEOUT,
        SERVER_SET,
        f"{download.DEFAULT_RESPONSE_TIMEOUT:g}",
        f"seconds (>= {download.MIN_TIMEOUT:g}) a direct HTTPS response may wait for its reader to take a "
        "block before the server closes it (the download continues by ranges)",
    ),
    Setting(
        download.ADMIN_DOWNLOAD_RATE_LIMIT,
        SERVER_SET,
        f"{download.DEFAULT_RATE_LIMIT:g}",
        f"MB/s (10^6 bytes) that all admin downloads together may send while a job runs (none running: full "
        f"speed): direct HTTPS responses and ranges share one pace, so downloads cannot take the CPU a job needs ({download.MIN_RATE_LIMIT:g} - "
        f"{download.MAX_RATE_LIMIT:g}; `0`: no limit) ([performance.md](performance.md#downloads-beside-training))",
    ),
    Setting(
        "file_download_progress_timeout",
        ADMIN_KIT,
        "5.0 (upstream's)",
        "seconds each chunk or range request may take on the admin side (3 retries); raise it with the "
        "chunk size or on slow links",
        env=False,
    ),
    Setting(
        publish.ENABLED,
        SERVER,
        f"`{str(_DEFAULTS.enabled).lower()}`",
        '`false`: no publisher is added to jobs and publish requests are answered "disabled"',
    ),
    Setting(
        publish.GLOBAL_NAME,
        SERVER,
        f"`{_DEFAULTS.global_name}`",
        "component `MODEL_<name>` of the final model (letters, digits, `.`, `-`, `_`)",
    ),
    Setting(
        publish.BEST_NAME,
        SERVER,
        f"`{_DEFAULTS.best_name}`",
        "component `MODEL_<name>` of the best model; must differ from the global name",
    ),
    Setting(
        publish.TRANSFER,
        SERVER,
        f"`{_DEFAULTS.transfer}`",
        f"one of {', '.join(f'`{t}`' for t in publish.TRANSFERS)}: `auto` hard-links (or copies) when the job "
        "process and the server see the same file, else streams; `stream` always pulls the bytes from the job "
        "process",
    ),
    Setting(
        publish.DROP_FROM_WORKSPACE,
        SERVER,
        f"`{str(_DEFAULTS.drop_from_workspace).lower()}`",
        "`true`: a stored model's file is removed from the job's run folder, so the `workspace` archive no "
        "longer holds it (the store keeps each model once)",
    ),
    Setting(
        publish.JOB_IMAGES_HAVE_FORK,
        SERVER,
        f"`{str(_DEFAULTS.job_images_have_fork).lower()}`",
        "only for launchers that run the job's server process from its own image (k8s, docker, slurm): "
        "`true` says every job image has the fork, so jobs get the publisher; `false`: such jobs run as upstream. "
        "A job's meta.json `model_publish_job_image_has_fork` overrides it ([containers.md](containers.md))",
    ),
    Setting(
        publish.TIMEOUT,
        SERVER + " (also read by the job process)",
        f"{publish.DEFAULT_TIMEOUT:g}",
        "seconds one model may take from publish request to stored",
    ),
    Setting(
        persistor_guard.ALLOWED_DIRS,
        SERVER + " (read by each job's server process)",
        "none",
        "JSON list of absolute directories from which a job's model persistor may *read* checkpoints "
        "(`source_ckpt_file_full_name`, ...); env: a JSON list or `:`-separated. Files a persistor writes must "
        "always stay inside the job's run folder ([security.md](security.md))",
    ),
)


def render_table() -> str:
    rows = ["| setting | where | env override | default | what it does |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        env = f"`{s.env_var}`" if s.env_var else "-"
        rows.append(f"| `{s.key}` | {s.where} | {env} | {s.default} | {s.meaning} |")
    return "\n".join(rows) + "\n"


def unlisted_keys() -> list:
    """Setting keys the SETTINGS_MODULES define that SETTINGS does not list."""
    listed = {s.key for s in SETTINGS}
    found = set()
    for module in SETTINGS_MODULES:
        for name, value in vars(module).items():
            if (
                name.isupper()
                and isinstance(value, str)
                and value.startswith(("admin_download_", "model_publish_", "model_persistor_"))
            ):
                found.add(value)
    return sorted(found - listed)
