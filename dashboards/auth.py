"""Who is reviewing: the authenticated user a front proxy vouches for, or a name typed in the sidebar.

Deployed (docker-compose.yml), the dashboard is reachable only through an authenticating front (Caddy
with basic auth) that sets one request header to the logged-in user and overwrites any value a client
sent. ``SAFEAUDIT_REVIEWER_HEADER`` names that header; when it is set, labels carry that name and nothing
else, and a request without the header may look but not label (fail closed). When it is unset (a laptop,
``safeaudit dashboard`` on 127.0.0.1) the reviewer types a name, as before.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

ENV_REVIEWER_HEADER = "SAFEAUDIT_REVIEWER_HEADER"
_NAME = re.compile(r"^[\w.@+-]{1,64}$")


def reviewer_header() -> str | None:
    """The trusted header's name, or None when the dashboard is not behind an authenticating front."""
    return (os.environ.get(ENV_REVIEWER_HEADER) or "").strip() or None


def authenticated_reviewer(headers: Mapping[str, str] | None, header: str) -> str | None:
    """The user the front authenticated, from ``headers`` (case-insensitive); None if absent or odd."""
    if not headers:
        return None
    wanted = header.lower()
    value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    if not isinstance(value, str) or not _NAME.match(value.strip()):
        return None
    return value.strip()
