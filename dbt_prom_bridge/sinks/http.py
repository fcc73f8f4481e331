"""The one HTTP client of the sinks: auth, TLS, timeouts, retries, and secret-free errors.

Built on the standard library (``urllib.request`` + ``ssl``), like prometheus_client's own push
handlers, so it adds no dependency. Credentials embedded in a URL are moved to a basic-auth
header and removed from the URL; every message uses :func:`redact_url`.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from dbt_prom_bridge.config import HttpAuth, Secret
from dbt_prom_bridge.errors import PushError, UsageError

USER_AGENT = "dbt-prom-bridge"


def redact_url(url: str) -> str:
    """The URL without user info, query string or fragment (they may hold secrets)."""
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


def split_credentials(url: str, auth: HttpAuth) -> tuple[str, HttpAuth]:
    """Move ``user:password@`` out of the URL into ``auth`` (flags win over the URL)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise UsageError("the gateway URL is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"the URL {redact_url(url)!r} must start with http:// or https:// and name a host")
    if parts.username is None and parts.password is None:
        return url, auth
    netloc = parts.netloc.rsplit("@", 1)[1]
    clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    if auth.username is None and auth.token is None:
        auth = replace(auth, username=user, password=auth.password or Secret(password))
    return clean, auth


class HttpFailure(Exception):
    """One failed attempt. ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


def _ssl_context(auth: HttpAuth) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(cafile=str(auth.ca_file) if auth.ca_file else None)
        if auth.cert_file is not None:
            ctx.load_cert_chain(str(auth.cert_file), str(auth.key_file) if auth.key_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the TLS CA/client certificate: {exc}") from None
    if auth.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class HttpClient:
    """Requests against one base URL with auth, TLS, a timeout and bounded retries."""

    def __init__(
        self,
        url: str,
        auth: HttpAuth = HttpAuth(),
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url, self.auth = split_credentials(url.rstrip("/"), auth)
        if self.auth.username is not None and self.auth.token is not None:
            raise UsageError("use either basic auth (--gateway-user) or a bearer token, not both")
        self.display_url = redact_url(self.base_url)
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self._sleep = sleep
        handlers: list[urllib.request.BaseHandler] = []
        if self.base_url.startswith("https:"):
            handlers.append(urllib.request.HTTPSHandler(context=_ssl_context(self.auth)))
        self._opener = urllib.request.build_opener(*handlers)
        self._secrets = tuple(
            s.reveal() for s in (self.auth.password, self.auth.token) if s is not None and s.reveal()
        )

    def _headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, **extra}
        if self.auth.token is not None:
            headers["Authorization"] = f"Bearer {self.auth.token.reveal()}"
        elif self.auth.username is not None:
            pw = self.auth.password.reveal() if self.auth.password else ""
            raw = f"{self.auth.username}:{pw}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        return headers

    def scrub(self, text: str) -> str:
        """Remove any secret this client holds from ``text`` (server messages may echo them)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def once(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        """One attempt; raises :class:`HttpFailure` (retryable or not)."""
        request = urllib.request.Request(
            self.base_url + path, data=body, method=method, headers=self._headers(headers or {})
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as resp:
                return Response(resp.status, resp.read())
        except urllib.error.HTTPError as exc:
            detail = self.scrub(exc.read()[:500].decode("utf-8", "replace").strip())
            status = exc.code
            if status in (401, 403):
                raise HttpFailure(
                    f"authentication failed ({status}) at {self.display_url}; check the username, "
                    "password or token",
                    retryable=False,
                    status=status,
                ) from None
            retryable = status >= 500 or status in (408, 429)
            text = f"HTTP {status} from {self.display_url}" + (f": {detail}" if detail else "")
            raise HttpFailure(text, retryable=retryable, status=status) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLError | ssl.CertificateError):
                raise HttpFailure(
                    f"TLS handshake with {self.display_url} failed ({self.scrub(str(reason))}); "
                    "check --gateway-ca / the client certificate",
                    retryable=False,
                ) from None
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise HttpFailure(
                    f"{self.display_url} did not answer within {self.timeout:g}s", retryable=True
                ) from None
            raise HttpFailure(
                f"cannot reach {self.display_url}: {self.scrub(str(reason))}", retryable=True
            ) from None
        except TimeoutError:
            raise HttpFailure(
                f"{self.display_url} did not answer within {self.timeout:g}s", retryable=True
            ) from None
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            raise HttpFailure(
                f"connection to {self.display_url} failed: {self.scrub(str(exc))}", retryable=True
            ) from None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        """:meth:`once` with up to ``retries`` retries and exponential backoff on retryable failures.

        Raises :class:`PushError` with the last failure's message when it gives up.
        """
        attempt = 0
        while True:
            try:
                return self.once(method, path, body, headers)
            except HttpFailure as failure:
                if not failure.retryable or attempt >= self.retries:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    raise PushError(f"{failure}{tries}", status=failure.status) from None
                self._sleep(self.backoff * (2**attempt))
                attempt += 1
