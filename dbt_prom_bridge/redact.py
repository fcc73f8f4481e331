"""Keeping secrets out of every message, log line, traceback and file this tool writes.

- :func:`redact_url` drops user info, query string and fragment from a URL (any of them may
  hold a credential) before it is shown or saved.
- :class:`Scrubber` replaces known secret values, in every form they can take on the wire
  (raw, ``user:password``, the base64 of a basic-auth header, percent-encoded), with ``***``.
  Servers sometimes echo the request (headers included) in an error body, so everything a
  server says passes through a scrubber before it reaches the user.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import sys
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence

MASK = "***"
#: Terminal control sequences (CSI, OSC, other ESC sequences) and C0/C1 control characters.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|[\x00-\x1f\x7f-\x9f]"
)

#: A lone UTF-16 surrogate (from a JSON escape or an undecodable file name): no UTF-8 output takes it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` (from a server, a database, a file) as one line a terminal shows as is: escape
    sequences and control characters removed (they could move the cursor, rewrite earlier
    lines or retitle the window), lone surrogates replaced by U+FFFD, runs of white space made
    one space."""
    return " ".join(_SURROGATE.sub("\ufffd", _CONTROL.sub(" ", text)).split())


_AUTHORITY = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]+)(:\d*)?(?=[/?#]|$)")


def split_userinfo(url: str) -> tuple[str | None, str]:
    """``(user info, URL without it)``, robust to passwords that were not percent-encoded.

    ``urllib`` takes ``http://bob:pa/ss@host`` as host ``bob`` with path ``/ss@host``, which
    would both connect to the wrong host and show part of the password. Here the user info is
    everything up to the *last* ``@`` before the query/fragment that is followed by a host.
    An ``@`` in the path of a base URL is taken as user info too: over-redacting a display is
    harmless, showing part of a password is not.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None, url
    head = re.split(r"[?#]", rest, maxsplit=1)[0]
    at = head.rfind("@")
    if at < 0 or not _AUTHORITY.match(rest, at + 1):
        # A '?' or '#' inside an unencoded password: ``http://bob:p?s@host``.
        at = rest.rfind("@")
        if at < 0 or "/" in rest[:at] or not _AUTHORITY.match(rest, at + 1):
            return None, url
    return rest[:at], f"{scheme}://{rest[at + 1 :]}"


def redact_url(url: str) -> str:
    """The URL without user info, query string or fragment (they may hold secrets)."""
    _, url = split_userinfo(url)
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


#: Query parameter values shorter than this are not masked on their own (``v=1`` would mask
#: every ``1``); the whole query string still is.
MIN_PARAMETER_SECRET = 4


def url_secrets(url: str) -> list[str]:
    """What in a URL may be a credential: its user info (and password), its query string, and each
    query parameter (``name=value`` and the value alone), since a server may echo one of them."""
    userinfo, rest = split_userinfo(url)
    found: list[str] = []
    if userinfo:
        found += [userinfo, userinfo.partition(":")[2]]
    query = re.split(r"#", rest.partition("?")[2], maxsplit=1)[0] if "?" in rest else ""
    if query:
        found.append(query)
        for pair in re.split(r"[&;]", query):
            value = pair.partition("=")[2]
            if len(value) >= MIN_PARAMETER_SECRET:
                found += [pair, value, urllib.parse.unquote_plus(value)]
    return [f for f in found if f]


def _escaped(form: str) -> set[str]:
    """How ``form`` looks inside JSON or HTML a server wrote (``&`` as ``\\u0026``, ``/`` as ``\\/``)."""
    out = {json.dumps(form)[1:-1], json.dumps(form, ensure_ascii=False)[1:-1]}
    out |= {f.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e") for f in set(out)}
    out |= {f.replace("/", "\\/") for f in set(out)}
    out.add(form.replace("&", "&amp;"))
    return out


def _forms(secret: str, username: str | None) -> set[str]:
    forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    if username is not None:
        pair = f"{username}:{secret}"
        forms.add(pair)
        forms.add(base64.b64encode(pair.encode()).decode("ascii"))
    forms.add(base64.b64encode(secret.encode()).decode("ascii"))
    for form in list(forms):
        forms |= _escaped(form)
    return {f for f in forms if f}


class Scrubber:
    """Replaces every known secret (and its encodings) in a text with ``***``."""

    def __init__(self, secrets: Iterable[str] = (), username: str | None = None) -> None:
        found: set[str] = set()
        for secret in secrets:
            if secret:
                found |= _forms(secret, username)
        # Longest first, so a base64 form is masked before a shorter raw form inside it.
        self._forms = tuple(sorted(found, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


def _scrub_arg(arg: str) -> str:
    if "://" not in arg:
        return arg
    userinfo, _ = split_userinfo(arg)
    if userinfo is None and "?" not in arg and "#" not in arg:
        return arg
    return redact_url(arg)


def scrub_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with every URL credential and query string removed (``--flag=URL`` too)."""
    out: list[str] = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        if eq and flag.startswith("-") and "://" not in flag:
            out.append(f"{flag}={_scrub_arg(value)}")
        else:
            out.append(_scrub_arg(arg))
    return out


@contextlib.contextmanager
def scrubbed_argv() -> Iterator[None]:
    """Hide URL credentials from ``sys.argv`` while third-party code runs in this process.

    dbt logs its "invocation command" (built from ``sys.argv``) to ``logs/dbt.log``: run
    in-process from ``dbt-prom push --gateway https://user:password@...`` it would write the
    password there.
    """
    original = list(sys.argv)
    sys.argv[:] = scrub_argv(original)
    try:
        yield
    finally:
        sys.argv[:] = original
