"""Credentials out of what is printed: a tracking or storage URI may carry them (http://user:pass@host,
?token=..., s3://...?secret_key=...), and such lines end up in terminals, CI logs and issue reports."""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

MASK = "***"
# Query keys that hold a secret (compared lowercased, without - and _); the rest (endpoint_override, region) stay.
_SECRET_KEYS = ("token", "password", "passwd", "pwd", "secret", "key", "signature", "sig", "credential", "auth")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>()]+")


def _secret(key: str) -> bool:
    flat = key.lower().replace("-", "").replace("_", "")
    return any(word in flat for word in _SECRET_KEYS)


def redact_uri(uri: str) -> str:
    """`uri` with its user information (user:password@) and its secret query values replaced by ***."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # not parseable as a URL (e.g. a bad IPv6 host): show nothing of it that could leak
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret(k) for k, _ in pairs):
            query = "&".join(f"{k}={MASK if _secret(k) else v}" for k, v in pairs)
    if (netloc, query) == (parts.netloc, parts.query):
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URL in `text` (an error message, a log line) passed through `redact_uri`."""
    return _URL.sub(lambda m: redact_uri(m.group(0)), text)
