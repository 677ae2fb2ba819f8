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
"""Admin download transaction timeout and chunk size, read from the server's config.

Upstream 2.9.0 fixes both: the transaction expires after max(admin_timeout, session idle
timeout + monitor interval) of inactivity (1805 s by default) and files go out in 5 MiB
chunks. Sites on slow links or with multi-GB models need to tune them, so they become
ConfigService vars read from the server's ``local/resources.json`` (top-level keys), with
``--set`` and ``NVFLARE_<NAME>`` environment overrides. Unset means upstream's behaviour.

admin_download_rate_limit paces the bytes of all admin downloads together while a job
runs, so a download cannot take the CPU the job needs (download_pacing).

The limits (admin_download_session_limit, admin_download_user_limit,
admin_download_server_limit, admin_download_server_reserve, admin_download_response_timeout)
bound what admins' downloads hold on the server; the transfer bounds
(admin_download_ranges_per_transfer, admin_download_ranges_per_user,
admin_download_max_lifetime, admin_download_min_rate, admin_download_progress_window) bound
what one download may ask of it at once and for how long (issue 21).

Values are validated when the admin server is created (see job_component_cmds), so a
typo stops the server at startup instead of failing the first large download.
"""

from typing import NamedTuple, Optional

from nvflare.apis.fl_constant import SystemConfigs
from nvflare.fuel.common.excepts import ConfigError
from nvflare.fuel.f3.streaming.file_downloader import DEFAULT_CHUNK_SIZE
from nvflare.fuel.utils.config_service import ENV_VAR_PREFIX, ConfigService

ADMIN_DOWNLOAD_TIMEOUT = "admin_download_timeout"
ADMIN_DOWNLOAD_CHUNK_SIZE = "admin_download_chunk_size"
# download_job_component may send the component as one HTTPS response on the server's
# listener (direct_download_route); false keeps it on the range transfer.
ADMIN_DOWNLOAD_DIRECT = "admin_download_direct"
# Bounds on what admins' downloads may hold on the server (download_limits below).
ADMIN_DOWNLOAD_SESSION_LIMIT = "admin_download_session_limit"
ADMIN_DOWNLOAD_SERVER_LIMIT = "admin_download_server_limit"
# Per account (admin user name) across all its sessions: more logins get no more downloads.
ADMIN_DOWNLOAD_USER_LIMIT = "admin_download_user_limit"
# Admin sessions one account may hold (session_admission): each login creates one.
ADMIN_SESSION_USER_LIMIT = "admin_session_user_limit"
DEFAULT_SESSION_USER_LIMIT = 32
ADMIN_DOWNLOAD_RESPONSE_TIMEOUT = "admin_download_response_timeout"
# One pace (MB/s, 10^6 bytes) for the bytes of all admin downloads together while a job
# runs: direct responses and range replies (download_pacing). 0: no limit.
ADMIN_DOWNLOAD_RATE_LIMIT = "admin_download_rate_limit"
DEFAULT_RATE_LIMIT = 30.0
# Below this a range request queued behind the other admins' blocks can wait longer than
# the admin's per-request timeout (file_download_progress_timeout, 5 s).
MIN_RATE_LIMIT = 10.0
MAX_RATE_LIMIT = 1000000.0
DEFAULT_SESSION_LIMIT = 8
DEFAULT_SERVER_LIMIT = 64
DEFAULT_USER_LIMIT = 16
DEFAULT_RESPONSE_TIMEOUT = 60.0
MAX_LIMIT = 100000
# The last slots of admin_download_server_limit go only to accounts that hold no download,
# so a few accounts cannot take them all; unset: a quarter of the server limit.
ADMIN_DOWNLOAD_SERVER_RESERVE = "admin_download_server_reserve"
SERVER_RESERVE_SHARE = 4  # default reserve = server limit // this
# Range requests in flight (admitted, not yet answered) per transfer and per account; more
# are refused at once (component_transfer_server). The fork's admin client keeps 4 in flight.
ADMIN_DOWNLOAD_RANGES_PER_TRANSFER = "admin_download_ranges_per_transfer"
ADMIN_DOWNLOAD_RANGES_PER_USER = "admin_download_ranges_per_user"
DEFAULT_RANGES_PER_TRANSFER = 4
DEFAULT_RANGES_PER_USER = 8
MIN_RANGES_IN_FLIGHT = 4
MAX_RANGES_IN_FLIGHT = 64
# A download ends this long after it opened, however active (slow readers cannot hold a
# slot forever) ...
ADMIN_DOWNLOAD_MAX_LIFETIME = "admin_download_max_lifetime"
DEFAULT_MAX_LIFETIME = 6 * 3600.0
# ... or when it received less than min_rate (MB/s) over the last progress window (s).
ADMIN_DOWNLOAD_MIN_RATE = "admin_download_min_rate"
DEFAULT_MIN_RATE = 0.1
ADMIN_DOWNLOAD_PROGRESS_WINDOW = "admin_download_progress_window"
DEFAULT_PROGRESS_WINDOW = 60.0

# A transaction shorter than the DownloadService sweep (5 s) plus one receiver retry
# backoff cannot be told apart from a broken link.
MIN_TIMEOUT = 1.0
MIN_CHUNK_SIZE = 4 * 1024
_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")
# One chunk is one cell message held in memory on both sides.
MAX_CHUNK_SIZE = 256 * 1024 * 1024


def env_var_name(name: str) -> str:
    return (ENV_VAR_PREFIX + name).upper()


def _lookup(name: str, getter):
    where = f"{name} (server local/resources.json, --set {name}=..., or env {env_var_name(name)})"
    try:
        # Without conf ConfigService looks at command args, --set and the environment only,
        # so an environment value overrides resources.json; then resources.json.
        value = getter(name, conf=None)
        if value is None:
            value = getter(name, conf=SystemConfigs.RESOURCES_CONF)
    except ValueError as e:
        raise ConfigError(f"invalid {where}: {e}") from None
    return value, where


def _seconds_setting(name: str, default: float) -> float:
    value, where = _lookup(name, ConfigService.get_float_var)
    if value is None:
        return default
    if not value >= MIN_TIMEOUT or value == float("inf"):
        raise ConfigError(f"invalid {where}: {value} must be a number of seconds >= {MIN_TIMEOUT}")
    return value


def admin_download_timeout(default: float) -> float:
    """Inactivity timeout (seconds) of an admin download transaction; ``default`` if unset."""
    return _seconds_setting(ADMIN_DOWNLOAD_TIMEOUT, default)


def upstream_download_timeout(admin) -> float:
    """Upstream 2.9.0's inactivity timeout of an admin download, for the admin server ``admin``.

    Upstream computes it inline in BinaryTransfer.download_folder (no function to call):
    keep the source reference through the owning session's next expiry sweep. The fork's
    own downloads use the same value; tests/upstream/test_upstream_shapes.py runs upstream's
    download_folder and fails if its value and this one part.
    """
    sessions = admin.sess_mgr
    return max(admin.timeout, sessions.idle_timeout + sessions.monitor_interval)


def admin_download_idle_timeout(admin) -> float:
    """The inactivity timeout of an admin download: admin_download_timeout, else upstream's."""
    return admin_download_timeout(upstream_download_timeout(admin))


def admin_download_chunk_size() -> int:
    """Bytes per chunk the server sends to an admin client."""
    value, where = _lookup(ADMIN_DOWNLOAD_CHUNK_SIZE, ConfigService.get_int_var)
    if value is None:
        return DEFAULT_CHUNK_SIZE
    if not MIN_CHUNK_SIZE <= value <= MAX_CHUNK_SIZE:
        raise ConfigError(f"invalid {where}: {value} must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes")
    return value


def add_file_chunk_args() -> dict:
    """add_file's keyword arguments: chunk_size only when one is configured.

    Unset, the call keeps upstream's exact shape (add_file(downloader, file_name=...)),
    which upstream's own unit tests rely on when they replace add_file.
    """
    value, _ = _lookup(ADMIN_DOWNLOAD_CHUNK_SIZE, ConfigService.get_int_var)
    return {} if value is None else {"chunk_size": admin_download_chunk_size()}


def admin_download_direct() -> bool:
    """Whether download_job_component offers the direct HTTPS response (default: yes)."""
    # Not get_bool_var: it reads any unknown word ("ture", "maybe") as false.
    value, where = _lookup(ADMIN_DOWNLOAD_DIRECT, ConfigService.get_str_var)
    if value is None:
        return True
    word = value.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ConfigError(f"invalid {where}: {value!r} must be true or false")


class DownloadLimits(NamedTuple):
    """How many downloads an admin session / the whole server / one admin account may have
    open at once, and how long a direct response may wait for its reader before it is closed."""

    per_session: int
    per_server: int
    response_timeout: float
    per_user: int
    reserve: int = 0  # of per_server, for accounts holding no download (server_reserve)


def _limit(name: str, default: int) -> int:
    value, where = _lookup(name, ConfigService.get_int_var)
    if value is None:
        return default
    if not 1 <= value <= MAX_LIMIT:
        raise ConfigError(f"invalid {where}: {value} must be a whole number from 1 to {MAX_LIMIT}")
    return value


def download_limits() -> DownloadLimits:
    """admin_download_session_limit, admin_download_server_limit, admin_download_response_timeout,
    admin_download_user_limit, admin_download_server_reserve.

    A download (download_job, download_job_components, download_job_component) is open from
    the command until its files are delivered, cancelled, idle for admin_download_timeout,
    or its session ends; each holds a transaction folder and the server's bookkeeping, and
    its direct responses a descriptor and socket buffers. Without a bound one admin could
    hold them all (issue 11: file descriptors ran out and job scheduling stopped), and
    without the per-account bound one account logging in many sessions could hold the
    whole server limit and lock every other admin out of downloads. Even so four accounts
    (16 each) could hold the 64 slots for as long as they keep reading; the reserve keeps the
    last slots for accounts that hold none.
    """
    timeout = _seconds_setting(ADMIN_DOWNLOAD_RESPONSE_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT)
    per_server = _limit(ADMIN_DOWNLOAD_SERVER_LIMIT, DEFAULT_SERVER_LIMIT)
    return DownloadLimits(
        _limit(ADMIN_DOWNLOAD_SESSION_LIMIT, DEFAULT_SESSION_LIMIT),
        per_server,
        timeout,
        _limit(ADMIN_DOWNLOAD_USER_LIMIT, DEFAULT_USER_LIMIT),
        server_reserve(per_server),
    )


def server_reserve(per_server: int) -> int:
    """admin_download_server_reserve: slots of the server limit kept for accounts holding no download."""
    value, where = _lookup(ADMIN_DOWNLOAD_SERVER_RESERVE, ConfigService.get_int_var)
    if value is None:
        return per_server // SERVER_RESERVE_SHARE
    if not 0 <= value < per_server:
        raise ConfigError(
            f"invalid {where}: {value} must be a whole number from 0 to {per_server - 1} (below "
            f"{ADMIN_DOWNLOAD_SERVER_LIMIT} = {per_server})"
        )
    return value


class TransferBounds(NamedTuple):
    """What one download may ask of the server at once, and for how long (see the settings above)."""

    ranges_per_transfer: int
    ranges_per_user: int
    max_lifetime: float  # seconds
    min_rate: float  # bytes per second over progress_window; 0: no minimum
    progress_window: float  # seconds


def transfer_bounds() -> TransferBounds:
    """admin_download_ranges_per_transfer, admin_download_ranges_per_user, admin_download_max_lifetime,
    admin_download_min_rate, admin_download_progress_window.

    Without them one account could keep a hundred range requests queued on the server (the
    excess of a transfer is refused instead), and a reader taking one byte now and then would
    keep its download, and its slot of admin_download_server_limit, open for ever.
    """
    per_transfer = _in_flight(ADMIN_DOWNLOAD_RANGES_PER_TRANSFER, DEFAULT_RANGES_PER_TRANSFER)
    per_user = _in_flight(ADMIN_DOWNLOAD_RANGES_PER_USER, DEFAULT_RANGES_PER_USER)
    if per_user < per_transfer:
        raise ConfigError(
            f"invalid {ADMIN_DOWNLOAD_RANGES_PER_USER} = {per_user}: it must be at least "
            f"{ADMIN_DOWNLOAD_RANGES_PER_TRANSFER} = {per_transfer} (an account's one download could not use its own "
            "share)"
        )
    min_rate, where = _lookup(ADMIN_DOWNLOAD_MIN_RATE, ConfigService.get_float_var)
    if min_rate is None:
        min_rate = DEFAULT_MIN_RATE
    elif not 0 <= min_rate <= MAX_RATE_LIMIT:
        raise ConfigError(
            f"invalid {where}: {min_rate} must be 0 (no minimum) or a number of MB/s up to {MAX_RATE_LIMIT:g}"
        )
    return TransferBounds(
        per_transfer,
        per_user,
        _seconds_setting(ADMIN_DOWNLOAD_MAX_LIFETIME, DEFAULT_MAX_LIFETIME),
        min_rate * 1000 * 1000,
        _seconds_setting(ADMIN_DOWNLOAD_PROGRESS_WINDOW, DEFAULT_PROGRESS_WINDOW),
    )


def _in_flight(name: str, default: int) -> int:
    value, where = _lookup(name, ConfigService.get_int_var)
    if value is None:
        return default
    if not MIN_RANGES_IN_FLIGHT <= value <= MAX_RANGES_IN_FLIGHT:
        raise ConfigError(
            f"invalid {where}: {value} must be a whole number from {MIN_RANGES_IN_FLIGHT} (what the fork's admin "
            f"client keeps in flight) to {MAX_RANGES_IN_FLIGHT}"
        )
    return value


def admin_session_user_limit() -> int:
    """How many admin sessions one account (user name) may hold; see session_admission."""
    return _limit(ADMIN_SESSION_USER_LIMIT, DEFAULT_SESSION_USER_LIMIT)


def admin_download_rate_limit() -> float:
    """Bytes per second all admin downloads together may send; 0 for no limit."""
    value, where = _lookup(ADMIN_DOWNLOAD_RATE_LIMIT, ConfigService.get_float_var)
    if value is None:
        value = DEFAULT_RATE_LIMIT
    elif not (value == 0 or MIN_RATE_LIMIT <= value <= MAX_RATE_LIMIT):
        raise ConfigError(
            f"invalid {where}: {value} must be 0 (no limit) or a number of MB/s from {MIN_RATE_LIMIT:g} to "
            f"{MAX_RATE_LIMIT:g}"
        )
    return value * 1000 * 1000


def check_download_settings(default_timeout: Optional[float] = None) -> tuple:
    """Read and validate the settings; raise ConfigError with the message an operator sees.

    Returns (timeout, chunk size, direct); the limits, the transfer bounds and the rate limit
    are validated here too (download_limits, server_reserve, transfer_bounds,
    admin_download_rate_limit).
    """
    download_limits()
    transfer_bounds()
    admin_session_user_limit()
    admin_download_rate_limit()
    return admin_download_timeout(default_timeout), admin_download_chunk_size(), admin_download_direct()
