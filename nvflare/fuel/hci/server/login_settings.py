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
"""The bounds on admin logins (login_limits), read the way the download settings are.

Top-level keys of the server's ``local/resources.json``, ``--set`` or ``NVFLARE_<KEY>``;
validated when the admin server builds its filter chain (AuditedAuthzFilter), so a typo
stops the server at startup with the key's name instead of locking admins out later.

The defaults leave room for scripts that log in often (the FLARE API logs in once per
Session; a test suite polls with a new Session every second) and refuse what only a
flood does: a failed certificate login is rare (a kit that fails, fails every time), so
ten in a minute already means something is wrong.
"""

from typing import NamedTuple

from nvflare.fuel.common.excepts import ConfigError
from nvflare.fuel.hci.server.download_settings import _limit, _lookup
from nvflare.fuel.utils.config_service import ConfigService

ADMIN_LOGIN_WINDOW = "admin_login_window"
ADMIN_LOGIN_FAILURE_LIMIT = "admin_login_failure_limit"
ADMIN_LOGIN_RATE_LIMIT = "admin_login_rate_limit"
ADMIN_LOGIN_CONCURRENCY = "admin_login_concurrency"

DEFAULT_WINDOW = 60.0
MIN_WINDOW = 1.0
MAX_WINDOW = 86400.0
DEFAULT_FAILURE_LIMIT = 10
DEFAULT_RATE_LIMIT = 120
DEFAULT_CONCURRENCY = 4


class LoginLimits(NamedTuple):
    window: float  # seconds the counts below look back
    failures: int  # failed logins per account and per connection within the window
    logins: int  # logins (any outcome) per account and per connection within the window
    concurrent: int  # logins of one account being checked at the same moment


def login_limits() -> LoginLimits:
    """admin_login_window, admin_login_failure_limit, admin_login_rate_limit, admin_login_concurrency."""
    window, where = _lookup(ADMIN_LOGIN_WINDOW, ConfigService.get_float_var)
    if window is None:
        window = DEFAULT_WINDOW
    elif not MIN_WINDOW <= window <= MAX_WINDOW:
        raise ConfigError(
            f"invalid {where}: {window} must be a number of seconds from {MIN_WINDOW:g} to {MAX_WINDOW:g}"
        )
    limits = LoginLimits(
        window,
        _limit(ADMIN_LOGIN_FAILURE_LIMIT, DEFAULT_FAILURE_LIMIT),
        _limit(ADMIN_LOGIN_RATE_LIMIT, DEFAULT_RATE_LIMIT),
        _limit(ADMIN_LOGIN_CONCURRENCY, DEFAULT_CONCURRENCY),
    )
    if limits.failures > limits.logins:
        raise ConfigError(
            f"invalid {ADMIN_LOGIN_FAILURE_LIMIT}: {limits.failures} is more than {ADMIN_LOGIN_RATE_LIMIT} "
            f"({limits.logins}); failed logins are logins too"
        )
    return limits
