"""Credentials are never shown: storage URLs parsed the way their users mean them, rendered
without passwords, and every password this process was handed masked in whatever it prints.

A password may hold characters a URL reserves ('@', '/', ':', '?', spaces) without being
percent-encoded; SQLAlchemy's `make_url` then splits it at the first '@' and takes the rest
for the host (which errors and logs would show). Here the user part runs to the LAST '@', so
the password is whole, whatever it holds; query parameters that carry secrets
(`?password=...`) are hidden too.

Example:
    >>> redact_url("postgresql://me:p@ss/w rd@dbhost:5432/orca?sslpassword=x&sslmode=require")
    'postgresql://me:***@dbhost:5432/orca?sslpassword=***&sslmode=require'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

from sqlalchemy.engine import URL, make_url

#: Query parameters whose values are secrets (libpq's, MySQL's and common driver options).
SECRET_KEYS = ("password", "passwd", "pwd", "pass", "sslpassword", "secret", "token",
               "access_token", "api_key", "apikey", "auth")
_SCHEME = re.compile(r"\w[\w+.-]*://")
_SECRET_QUERY = re.compile(r"([?&;](?:" + "|".join(SECRET_KEYS) + r")=)([^&;#\s'\"]*)", re.IGNORECASE)
#: In free text: "scheme://user:password@" with the password running to the last '@' before
#: the next whitespace.
_TEXT_PASSWORD = re.compile(r"((?:\w[\w+.-]*)?://[^\s:/@]*):\S*@")
#: Registered secrets shorter than this are masked only where they stand in a URL (masking
#: every "pw" in a traceback would garble it and hide nothing).
MIN_MASKED_LENGTH = 3

_remembered: set[str] = set()


def _split(url: str, schemeless: bool = False) -> tuple[str, str | None, str | None, str] | None:
    """(scheme://, user, password, rest after the '@') of a URL; None when `url` has no
    scheme, unless `schemeless`: then whatever precedes a '://' is the scheme, and without
    one "user:password@rest" counts too. User and password are None when there is no '@'."""
    text = url.strip()
    found = _SCHEME.match(text)
    if found:
        head, tail = text[:found.end()], text[found.end():]
    elif schemeless:
        at = text.find("://")
        head, tail = (text[:at + 3], text[at + 3:]) if at >= 0 else ("", text)
    else:
        return None
    if "@" not in tail:
        return head, None, None, tail
    userinfo, rest = tail.rsplit("@", 1)
    user, colon, password = userinfo.partition(":")
    if head and "/" in user:  # an '@' in a path (sqlite:///a@b.db), not a user part
        return head, None, None, tail
    return head, user, password if colon else None, rest


def redact_url(url: str) -> str:
    """`url` with its password and secret query values replaced by ***: the only form of a
    storage URL that is printed, logged or stored."""
    parts = _split(url, schemeless=True)
    assert parts is not None  # schemeless: always parts
    head, user, password, rest = parts
    shown = head + ("" if user is None else f"{user}{'' if password is None else ':***'}@") + rest
    return _SECRET_QUERY.sub(r"\1***", shown)


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL `url` means, its password whole (see the module's note). Raises
    what `make_url` raises for a malformed URL (ArgumentError, ValueError)."""
    parts = _split(url)
    if parts is None or parts[1] is None:
        return make_url(url.strip())
    head, user, password, rest = parts
    userinfo = quote(unquote(user or ""), safe="")
    if password is not None:
        userinfo += ":" + quote(unquote(password), safe="")
    return make_url(f"{head}{userinfo}@{rest}")


def url_secrets(text: str) -> set[str]:
    """The secrets a URL-like `text` holds: its password as written and decoded, and the
    values of secret query parameters; empty for anything else."""
    found: set[str] = set()
    parts = _split(text)
    if parts is None:
        return found
    if parts[2]:
        found |= {parts[2], unquote(parts[2]), quote(unquote(parts[2]), safe="")}
    for match in _SECRET_QUERY.finditer(text):
        found |= {match.group(2), unquote(match.group(2))}
    return {s for s in found if s}


def remember(texts: Iterable[str]) -> None:
    """Note the secrets in `texts` (a command line, a storage URL), so `mask` hides them in
    anything printed later, wherever they appear."""
    for text in texts:
        _remembered.update(url_secrets(text))
        if "=" in text and text.startswith("-"):  # --storage=URL
            _remembered.update(url_secrets(text.split("=", 1)[1]))


def mask(text: str) -> str:
    """`text` with every remembered secret and every URL password in it replaced by ***."""
    for secret in sorted(_remembered, key=len, reverse=True):
        if len(secret) >= MIN_MASKED_LENGTH:
            text = text.replace(secret, "***")
    text = _TEXT_PASSWORD.sub(r"\1:***@", text)
    return _SECRET_QUERY.sub(r"\1***", text)
