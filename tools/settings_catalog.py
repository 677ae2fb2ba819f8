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
entry below, then ``python tools/settings_table.py --write`` (tests/packaging/test_settings_table.py
fails while the table is stale or a setting key of those modules is missing here).

It lives in tools/, next to the generator that is its one user: nothing at run time reads
it, and it imports modules of every layer (fuel, app_common, private), so inside the
package it could sit nowhere without importing upward.
"""

from dataclasses import dataclass

from nvflare.app_common.model_publishing import model_publish_settings as publish
from nvflare.app_common.model_publishing import model_signing_key as signing
from nvflare.app_common.path_guard import persistor_path_guard as persistor_guard
from nvflare.fuel.f3.streaming.file_downloader import DEFAULT_CHUNK_SIZE
from nvflare.fuel.hci.client import component_provenance as provenance
from nvflare.fuel.hci.server import download_settings as download
from nvflare.fuel.hci.server import login_settings as login
from nvflare.private.fed.server import model_backfill_limits as backfill

SERVER = "server `local/resources.json`"
SERVER_SET = "server `local/resources.json` or `--set`"
ADMIN_KIT = "admin kit `startup/fed_admin.json`, `admin` section"

# Modules whose setting keys must all be listed (upper-case str constants ending in the key).
SETTINGS_MODULES = (download, publish, persistor_guard, login, backfill, signing, provenance)
SETTING_PREFIXES = (
    "admin_download_",
    "model_publish_",
    "model_persistor_",
    "job_read_",
    "admin_login_",
    "model_backfill_",
    "model_signing_",
)


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
        download.ADMIN_DOWNLOAD_SERVER_RESERVE,
        SERVER_SET,
        f"`{download.ADMIN_DOWNLOAD_SERVER_LIMIT}` / {download.SERVER_RESERVE_SHARE} (16 of 64)",
        "the last slots of the server limit, kept for accounts that hold no download (0 - server limit - 1), so "
        "that a few accounts cannot hold every slot; a command beyond it is refused with the reason and audited",
    ),
    Setting(
        download.ADMIN_DOWNLOAD_RANGES_PER_TRANSFER,
        SERVER_SET,
        f"{download.DEFAULT_RANGES_PER_TRANSFER}",
        f"range requests one download may have in flight ({download.MIN_RANGES_IN_FLIGHT} - "
        f"{download.MAX_RANGES_IN_FLIGHT}; the fork's admin client keeps 4); more are refused at once, not queued",
    ),
    Setting(
        download.ADMIN_DOWNLOAD_RANGES_PER_USER,
        SERVER_SET,
        f"{download.DEFAULT_RANGES_PER_USER}",
        f"range requests (and DownloadService chunks of folder downloads) one account may have in flight over all "
        f"its downloads and sessions (at least the per-transfer value, up to {download.MAX_RANGES_IN_FLIGHT}); more "
        "are refused at once",
    ),
    Setting(
        download.ADMIN_DOWNLOAD_MAX_LIFETIME,
        SERVER_SET,
        f"{download.DEFAULT_MAX_LIFETIME:g} (6 h)",
        f"seconds (>= {download.MIN_TIMEOUT:g}) a download may stay open however active; then the server ends it "
        "and its admin is told why (run the command again)",
    ),
    Setting(
        download.ADMIN_DOWNLOAD_MIN_RATE,
        SERVER_SET,
        f"{download.DEFAULT_MIN_RATE:g}",
        "MB/s a component download (or the direct files of a folder download, together) must receive over each "
        "progress window, or the server ends it as too slow (a reader taking a byte now and then cannot hold its "
        "slot); `0`: no minimum",
    ),
    Setting(
        download.ADMIN_DOWNLOAD_PROGRESS_WINDOW,
        SERVER_SET,
        f"{download.DEFAULT_PROGRESS_WINDOW:g}",
        f"seconds (>= {download.MIN_TIMEOUT:g}) over which `admin_download_min_rate` is measured (the files of one "
        "folder download count together)",
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
        f"speed): direct HTTPS responses, ranges and folder chunks share one pace, shared equally by the accounts "
        f"downloading, so downloads cannot take the CPU a job needs ({download.MIN_RATE_LIMIT:g} - "
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
        persistor_guard.READ_ALLOWED_DIRS,
        "each site's `local/resources.json` (read by the site's job processes)",
        "none",
        "JSON list of absolute directories from which the components a job configures may *read* files (a "
        "persistor's `source_ckpt_file_full_name`, `NPModelLocator`'s `model_name`, ...); env: a JSON list or "
        "`:`-separated. Written files always stay inside the job's run folder, and no directory here opens the "
        "site's `startup/`, `local/`, other jobs' folders or the job store ([security.md](security.md))",
    ),
    Setting(
        persistor_guard.ALLOWED_DIRS,
        "each site's `local/resources.json`",
        "none",
        f"the first name of `{persistor_guard.READ_ALLOWED_DIRS}`, still read: the directories of both are allowed",
    ),
    Setting(
        login.ADMIN_LOGIN_WINDOW,
        SERVER_SET,
        f"{login.DEFAULT_WINDOW:g}",
        f"seconds ({login.MIN_WINDOW:g} - {login.MAX_WINDOW:g}) the login bounds below count back "
        "([security.md](security.md#admin-logins-and-sessions))",
    ),
    Setting(
        login.ADMIN_LOGIN_RATE_LIMIT,
        SERVER_SET,
        f"{login.DEFAULT_RATE_LIMIT}",
        f"logins (any outcome) per account and per admin connection within `{login.ADMIN_LOGIN_WINDOW}` "
        f"(1 - {download.MAX_LIMIT}); beyond it a login is refused at once, with when to retry, and audited",
    ),
    Setting(
        login.ADMIN_LOGIN_FAILURE_LIMIT,
        SERVER_SET,
        f"{login.DEFAULT_FAILURE_LIMIT}",
        f"failed logins per account and per admin connection within `{login.ADMIN_LOGIN_WINDOW}` (1 - "
        f"`{login.ADMIN_LOGIN_RATE_LIMIT}`); after that every login from them is refused at once until the "
        "oldest failure is older than the window. The account is the one the connection authenticated as, so "
        "nobody can lock another account out",
    ),
    Setting(
        login.ADMIN_LOGIN_CONCURRENCY,
        SERVER_SET,
        f"{login.DEFAULT_CONCURRENCY}",
        f"logins of one account the server checks at the same moment (1 - {download.MAX_LIMIT}); more are "
        "refused at once",
    ),
    Setting(
        backfill.MODEL_BACKFILL_LIMIT,
        SERVER_SET,
        f"{backfill.DEFAULT_LIMIT}",
        f"`backfill_job_model` commands running at once (1 - {backfill.MAX_LIMIT}; `--all` is one); backfills of "
        "different jobs run in parallel, one beyond the limit is refused at once and audited, a second one of "
        "the same job is answered `in progress`",
    ),
    Setting(
        signing.KEY_DIR,
        SERVER,
        f"`<workspace>/{signing.DEFAULT_DIR_NAME}`",
        f"folder of the server's dedicated model-signing key (`{signing.KEY_FILE}`, `{signing.CERT_FILE}`; relative: "
        "to the workspace). Used only where no job process can read it, else the server signs with its TLS key "
        "(weaker) and says why at startup; never mount it into a job container ([provenance.md](provenance.md))",
    ),
    Setting(
        signing.ISOLATED_LAUNCHERS,
        SERVER,
        "none (DockerJobLauncher and K8sJobLauncher count as isolating)",
        "JSON list (env: JSON or `,`-separated) of further job launcher classes whose job processes cannot read "
        f"`{signing.KEY_DIR}`: the operator's word, which lets the server sign with the dedicated key "
        "([provenance.md](provenance.md#which-key-the-server-signs-with))",
    ),
    Setting(
        provenance.SETTING,
        ADMIN_KIT,
        f"`{provenance.ANY}`",
        f"what `download_job_component` (console, FLARE API, `nvflare job download`) requires of a model's "
        f"provenance: `{provenance.ANY}` (unsigned and weaker are delivered and say so), `{provenance.SIGNED}` "
        f"(a component without a verifying statement is refused, no file kept), `{provenance.REQUIRE_STRONG}` "
        "(a weaker one, signed with the server's TLS key, is refused too)",
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
                and (value.startswith(SETTING_PREFIXES) or value == provenance.SETTING)
            ):
                found.add(value)
    return sorted(found - listed)
