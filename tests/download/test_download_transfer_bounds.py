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
"""Issue 21's settings and the bounds they set, without a FLARE system.

The settings (admin_download_ranges_per_transfer, admin_download_ranges_per_user,
admin_download_max_lifetime, admin_download_min_rate, admin_download_progress_window,
admin_download_server_reserve) are read in a fresh interpreter per case, as the server
reads them at startup (check_download_settings: a bad value stops it with the message
checked here). The reserve and the lifetime of every download binding run against
upstream's real SessionManager, like test_download_admission_units. The range bounds and
the progress bound on a real server: tests/download/test_download_flood.py.
"""

import os
import subprocess
import sys

import pytest

from nvflare.apis.fl_constant import AdminCommandNames as AC
from nvflare.fuel.hci.conn import Connection
from nvflare.fuel.hci.server import download_admission as da
from nvflare.fuel.hci.server.sess import SessionManager
from nvflare.fuel.utils.config_service import ConfigService

CHECK = (
    "from nvflare.fuel.hci.server.download_settings import check_download_settings, download_limits, transfer_bounds\n"
    "try:\n    check_download_settings(1805.0)\n    print(tuple(transfer_bounds()), download_limits().reserve)\n"
    "except Exception as e:\n    print(type(e).__name__ + ': ' + str(e))\n"
)


def where(name: str) -> str:
    return f"invalid {name} (server local/resources.json, --set {name}=..., or env NVFLARE_{name.upper()})"


@pytest.mark.parametrize(
    "env, printed",
    [
        ({}, "(4, 8, 21600.0, 100000.0, 60.0) 16"),
        ({"NVFLARE_ADMIN_DOWNLOAD_SERVER_LIMIT": "10"}, "(4, 8, 21600.0, 100000.0, 60.0) 2"),
        (
            {
                "NVFLARE_ADMIN_DOWNLOAD_RANGES_PER_TRANSFER": "6",
                "NVFLARE_ADMIN_DOWNLOAD_RANGES_PER_USER": "12",
                "NVFLARE_ADMIN_DOWNLOAD_MAX_LIFETIME": "90",
                "NVFLARE_ADMIN_DOWNLOAD_MIN_RATE": "0",
                "NVFLARE_ADMIN_DOWNLOAD_PROGRESS_WINDOW": "5",
                "NVFLARE_ADMIN_DOWNLOAD_SERVER_RESERVE": "0",
            },
            "(6, 12, 90.0, 0.0, 5.0) 0",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_RANGES_PER_TRANSFER": "2"},
            f"ConfigError: {where('admin_download_ranges_per_transfer')}: 2 must be a whole number from 4 (what the "
            "fork's admin client keeps in flight) to 64",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_RANGES_PER_USER": "100"},
            f"ConfigError: {where('admin_download_ranges_per_user')}: 100 must be a whole number from 4 (what the "
            "fork's admin client keeps in flight) to 64",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_RANGES_PER_TRANSFER": "8", "NVFLARE_ADMIN_DOWNLOAD_RANGES_PER_USER": "6"},
            "ConfigError: invalid admin_download_ranges_per_user = 6: it must be at least "
            "admin_download_ranges_per_transfer = 8 (an account's one download could not use its own share)",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_MAX_LIFETIME": "0.5"},
            f"ConfigError: {where('admin_download_max_lifetime')}: 0.5 must be a number of seconds >= 1.0",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_MAX_LIFETIME": "forever"},
            f"ConfigError: {where('admin_download_max_lifetime')}: var admin_download_max_lifetime's value 'forever' "
            "cannot be converted to float: could not convert string to float: 'forever'",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_MIN_RATE": "-1"},
            f"ConfigError: {where('admin_download_min_rate')}: -1.0 must be 0 (no minimum) or a number of MB/s up to "
            "1e+06",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_MIN_RATE": "nan"},
            f"ConfigError: {where('admin_download_min_rate')}: nan must be 0 (no minimum) or a number of MB/s up to "
            "1e+06",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_PROGRESS_WINDOW": "inf"},
            f"ConfigError: {where('admin_download_progress_window')}: inf must be a number of seconds >= 1.0",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_SERVER_RESERVE": "64"},
            f"ConfigError: {where('admin_download_server_reserve')}: 64 must be a whole number from 0 to 63 (below "
            "admin_download_server_limit = 64)",
        ),
        (
            {"NVFLARE_ADMIN_DOWNLOAD_SERVER_RESERVE": "-1"},
            f"ConfigError: {where('admin_download_server_reserve')}: -1 must be a whole number from 0 to 63 (below "
            "admin_download_server_limit = 64)",
        ),
    ],
)
def test_setting_values_and_messages(env, printed):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NVFLARE_ADMIN_DOWNLOAD")}
    out = subprocess.run(
        [sys.executable, "-c", CHECK], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip().splitlines()[-1] == printed, out.stderr


IDLE = 1805.0


@pytest.fixture
def sessions(monkeypatch):
    ConfigService.reset()  # it keeps the values it read: each test reads its own environment
    for name, value in {"SESSION_LIMIT": "8", "USER_LIMIT": "6", "SERVER_LIMIT": "10", "SERVER_RESERVE": "3"}.items():
        monkeypatch.setenv(f"NVFLARE_ADMIN_DOWNLOAD_{name}", value)
    mgr = SessionManager(cell=None, monitor_interval=3600)
    yield mgr
    mgr.shutdown()
    da._pending.clear()
    ConfigService.reset()


def open_download(mgr, sess, tx: str):
    conn = Connection()
    refused = da.admit(conn, AC.DOWNLOAD_JOB_COMPONENT, sess, mgr, IDLE)
    if refused is None:
        mgr.bind_download(sess.sess_id, tx, lambda: None)
        da.release(conn)
    return refused


def test_the_last_slots_are_kept_for_accounts_holding_none(sessions):
    mgr = sessions
    a, b, c, d, e = (mgr.create_session(f"user{i}@nvidia.com", "nvidia", "lead", f"admin@{i}") for i in range(5))
    assert [open_download(mgr, a, f"a{i}") for i in range(6)] == [None] * 6  # a's account limit
    assert open_download(mgr, b, "b0") is None  # 7 of 10 open: 3 kept
    refused = open_download(mgr, b, "b1")
    assert refused == (
        "download refused: the server has 7 of its 10 downloads open (admin_download_server_limit = 10) and keeps "
        "the last 3 for accounts that hold none (admin_download_server_reserve = 3); the account user1@nvidia.com "
        "holds 1. Retry when one of its downloads is finished or cancelled (idle ones are released after 1805 s "
        "(admin_download_timeout), every one after 21600 s (admin_download_max_lifetime))"
    )
    assert refused == da.reserve_message("user1@nvidia.com", 1, 7, 10, 3, IDLE)
    # accounts holding none still get one each: the reserve, then the server limit
    assert [open_download(mgr, s, f"x{i}") for i, s in enumerate((c, d, e))] == [None] * 3
    assert open_download(mgr, mgr.create_session("late@nvidia.com", "nvidia", "lead", "x"), "y") == (
        da.server_limit_message(10, IDLE)
    )
    # a's download ends: b (holding one) may not take the freed slot, it is in the reserve
    mgr.end_download(a.sess_id, "a0")
    assert open_download(mgr, b, "b1") == da.reserve_message("user1@nvidia.com", 1, 9, 10, 3, IDLE)


def test_without_a_reserve_the_server_limit_alone(sessions, monkeypatch):
    monkeypatch.setenv("NVFLARE_ADMIN_DOWNLOAD_SERVER_RESERVE", "0")
    ConfigService.reset()
    mgr = sessions
    a, b = (mgr.create_session(f"user{i}@nvidia.com", "nvidia", "lead", f"admin@{i}") for i in range(2))
    assert [open_download(mgr, s, f"{s.sess_id}{i}") for s in (a, b) for i in range(5)] == [None] * 10


def test_every_binding_ends_after_the_lifetime(sessions, monkeypatch):
    """upstream's DownloadService transactions too: their binding's cancel callback runs."""
    monkeypatch.setenv("NVFLARE_ADMIN_DOWNLOAD_MAX_LIFETIME", "100")
    ConfigService.reset()
    mgr = sessions
    sess = mgr.create_session("lead@nvidia.com", "nvidia", "lead", "admin@x")
    cancelled = []
    mgr.bind_download(sess.sess_id, "old", lambda: cancelled.append("old"))
    assert da.end_overdue(mgr, now=1000.0) == []  # first seen now
    mgr.bind_download(sess.sess_id, "new", lambda: cancelled.append("new"))
    assert da.end_overdue(mgr, now=1050.0) == []
    assert da.end_overdue(mgr, now=1000.0 + 100 + da.OVERDUE_GRACE + 1) == [(sess.sess_id, "old")]
    assert cancelled == ["old"]
    assert list(mgr.downloads[sess.sess_id]) == ["new"]
    assert da.end_overdue(mgr, now=1050.0 + 100 + da.OVERDUE_GRACE + 1) == [(sess.sess_id, "new")]
    assert cancelled == ["old", "new"] and sess.sess_id not in mgr.downloads
    # a binding that ended on its own is forgotten: a new one of the same name starts afresh
    mgr.bind_download(sess.sess_id, "old", lambda: cancelled.append("again"))
    assert da.end_overdue(mgr, now=5000.0) == []
    assert cancelled == ["old", "new"]
