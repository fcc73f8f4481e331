"""The HTTP client of the sinks, against a real loopback HTTP server: retries and backoff,
retryable vs permanent failures, auth headers, redirects, and secret-free messages."""

from __future__ import annotations

import base64
import socket
import time

import pytest

from dbt_prom_bridge.config import HttpAuth, Secret
from dbt_prom_bridge.errors import PushError, UsageError
from dbt_prom_bridge.redact import Scrubber, redact_url
from dbt_prom_bridge.sinks.http import MAX_BACKOFF, DeliveryError, HttpClient, split_credentials
from tests.reliability.loopback import Drip, Drop, Hang, Loopback, Reply

PASSWORD = "pw-Zq8!x:y@z/%"
TOKEN = "tok-7f3a9c1e55d0"


class Sleeps:
    """A recording, non-sleeping ``sleep``."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def client(url: str, sleeps: Sleeps | None = None, **kw: object) -> HttpClient:
    return HttpClient(url, sleep=sleeps or Sleeps(), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_retryable_statuses_are_retried_with_exponential_backoff(status: int) -> None:
    sleeps = Sleeps()
    with Loopback([Reply(status, b"busy"), Reply(status), Reply(status), Reply(200, b"ok")]) as srv:
        resp = client(srv.url, sleeps, retries=3, backoff=0.5).request("PUT", "/x", b"body")
    assert resp.status == 200 and resp.body == b"ok"
    assert sleeps.calls == [0.5, 1.0, 2.0]
    assert [s.method for s in srv.seen] == ["PUT"] * 4
    assert all(s.body == b"body" for s in srv.seen)


def test_gives_up_after_the_retries_with_the_last_message() -> None:
    sleeps = Sleeps()
    with Loopback([Reply(503, b"overloaded")]) as srv, pytest.raises(DeliveryError) as exc:
        client(srv.url, sleeps, retries=2).request("PUT", "/x", b"")
    assert len(srv.seen) == 3
    assert exc.value.retryable and exc.value.status == 503
    assert str(exc.value) == f"HTTP 503 from {srv.url}: overloaded after 3 attempts"
    assert isinstance(exc.value, PushError) and exc.value.exit_code == 4


def test_backoff_is_capped() -> None:
    c = client("http://127.0.0.1:1", retries=20, backoff=1.0)
    assert [c.wait_before(n) for n in (0, 1, 4, 5, 19)] == [1.0, 2.0, 16.0, MAX_BACKOFF, MAX_BACKOFF]


def test_zero_retries_means_one_attempt() -> None:
    with Loopback([Reply(500)]) as srv, pytest.raises(DeliveryError):
        client(srv.url, retries=0).request("GET", "/")
    assert len(srv.seen) == 1


@pytest.mark.parametrize("status", [400, 404, 405, 409, 413, 422])
def test_permanent_statuses_fail_at_once_showing_the_gateway_message(status: int) -> None:
    body = b'pushed metrics are invalid or inconsistent with existing metrics: "x" has\nlabel dimensions'
    with Loopback([Reply(status, body)]) as srv, pytest.raises(DeliveryError) as exc:
        client(srv.url).request("PUT", "/x", b"")
    assert len(srv.seen) == 1
    assert not exc.value.retryable and exc.value.status == status
    message = str(exc.value)
    assert message.startswith(f"HTTP {status} from {srv.url}: pushed metrics are invalid")
    assert "\n" not in message and "label dimensions" in message


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_say_so_without_the_secret(status: int) -> None:
    auth = HttpAuth(username="bob", password=Secret(PASSWORD))
    with (
        Loopback([Reply(status, f"denied for {PASSWORD}".encode(), echo=True)]) as srv,
        pytest.raises(DeliveryError) as exc,
    ):
        client(srv.url, auth=auth).request("GET", "/")
    assert len(srv.seen) == 1
    assert str(exc.value) == (
        f"authentication failed (HTTP {status}) at {srv.url}; check the user name, password or token"
    )


def test_error_body_is_bounded() -> None:
    with Loopback([Reply(400, b"x" * 100_000)]) as srv, pytest.raises(DeliveryError) as exc:
        client(srv.url).request("PUT", "/x", b"")
    assert len(str(exc.value)) < 2200


def test_connection_refused_is_retried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()
    with pytest.raises(DeliveryError) as exc:
        client(f"http://127.0.0.1:{port}", sleeps, retries=2).request("GET", "/")
    assert exc.value.retryable and exc.value.status is None
    assert "cannot reach" in str(exc.value) and "after 3 attempts" in str(exc.value)
    assert sleeps.calls == [1.0, 2.0]


def test_a_hanging_server_times_out_and_is_retried() -> None:
    with Loopback([Hang()]) as srv:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as exc:
            client(srv.url, retries=1, timeout=0.3).request("PUT", "/x", b"")
        elapsed = time.monotonic() - started
    assert exc.value.retryable
    assert str(exc.value) == f"{srv.url} did not answer within 0.3s after 2 attempts"
    assert len(srv.seen) == 2
    assert elapsed < 10


def test_a_dropped_connection_is_retried_then_succeeds() -> None:
    with Loopback([Drop(), Reply(202)]) as srv:
        assert client(srv.url).request("PUT", "/x", b"").status == 202
    assert len(srv.seen) == 2


def test_redirects_are_not_followed_and_credentials_not_resent() -> None:
    with (
        Loopback([Reply(200)]) as target,
        Loopback(
            [Reply(307, headers=(("Location", target.url.replace("//", f"//bob:{PASSWORD}@") + "/x?k=v"),))]
        ) as srv,
    ):
        with pytest.raises(DeliveryError) as exc:
            client(srv.url, auth=HttpAuth(username="bob", password=Secret(PASSWORD))).request("GET", "/")
        assert target.seen == []
    assert not exc.value.retryable
    assert f"redirect (HTTP 307 to {target.url}/x)" in str(exc.value)
    assert PASSWORD not in str(exc.value)


def test_basic_auth_header() -> None:
    with Loopback([Reply(200)]) as srv:
        client(srv.url, auth=HttpAuth(username="bob", password=Secret(PASSWORD))).request("GET", "/")
    expected = base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
    assert srv.seen[0].headers["Authorization"] == f"Basic {expected}"


def test_bearer_token_header() -> None:
    with Loopback([Reply(200)]) as srv:
        client(srv.url, auth=HttpAuth(token=Secret(TOKEN))).request("GET", "/")
    assert srv.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_credentials_in_the_url_become_a_header_and_leave_the_url() -> None:
    with Loopback([Reply(200)]) as srv:
        url = srv.url.replace("http://", "http://al%40ice:s%2Fcr%3At@")
        c = client(url + "/base/")
        c.request("GET", "/api")
    assert c.display_url == srv.url + "/base"
    assert srv.seen[0].path == "/base/api"
    assert srv.seen[0].headers["Authorization"] == "Basic " + base64.b64encode(b"al@ice:s/cr:t").decode()


def test_flags_win_over_url_credentials() -> None:
    url, auth = split_credentials("http://u:p@h:9091", HttpAuth(token=Secret(TOKEN)))
    assert url == "http://h:9091" and auth.username is None and auth.token is not None


def test_query_string_is_kept_apart_and_never_shown() -> None:
    with Loopback([Reply(500, b"bad key api_key=SEKRIT")]) as srv:
        c = client(srv.url + "/p?api_key=SEKRIT", retries=0)
        with pytest.raises(DeliveryError) as exc:
            c.request("PUT", "/metrics/job/x", b"")
    assert srv.seen[0].path == "/p/metrics/job/x?api_key=SEKRIT"
    assert "SEKRIT" not in str(exc.value) and c.display_url == srv.url + "/p"


@pytest.mark.parametrize(
    ("auth", "what"),
    [
        (HttpAuth(token=Secret("abc\r\nX-Injected: 1")), "password or token"),
        (HttpAuth(token=Secret("tök")), "password or token"),
        (HttpAuth(username="bob", password=Secret("pw\n")), "password or token"),
        (HttpAuth(username="bo:b", password=Secret("pw")), "user name"),
    ],
)
def test_credentials_that_cannot_be_a_header_are_refused_without_showing_them(
    auth: HttpAuth, what: str
) -> None:
    with pytest.raises(UsageError) as exc:
        HttpClient("http://127.0.0.1:9", auth)
    assert what in str(exc.value)
    secret = auth.token or auth.password
    assert secret is not None and secret.reveal().strip() not in str(exc.value)


def test_basic_and_bearer_together_are_refused() -> None:
    with pytest.raises(UsageError, match="not both"):
        HttpClient("http://h", HttpAuth(username="u", password=Secret("p"), token=Secret("t")))


@pytest.mark.parametrize("url", ["ftp://h/x", "h:9091", "http://", "http://[::1", "http://h:9091/a b"])
def test_bad_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError):
        HttpClient(url)


def test_a_path_no_server_can_be_asked_for_fails_at_once_not_as_a_down_gateway() -> None:
    # Retryable failures make replay treat the gateway as down and hold back every newer run.
    sleeps = Sleeps()
    with Loopback([Reply(200)]) as srv, pytest.raises(DeliveryError) as exc:
        client(srv.url, sleeps, retries=3).request("PUT", "/metrics/job/j/a b/c", b"x")
    assert not exc.value.retryable and sleeps.calls == []
    assert "cannot send a request to" in str(exc.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://gw:port/x"])
def test_a_bad_port_is_named_as_the_problem(url: str) -> None:
    # The URL is shown without the bad port (redact_url), which alone read as 'http://gw is invalid'.
    with pytest.raises(UsageError, match="the port after the host must be a number from 0 to 65535"):
        HttpClient(url)


def test_unreadable_ca_is_a_usage_error(tmp_path) -> None:
    with pytest.raises(UsageError, match="cannot load the TLS CA"):
        HttpClient("https://h", HttpAuth(ca_file=tmp_path / "missing.pem"))


def test_scrubber_masks_every_encoding() -> None:
    scrub = Scrubber([PASSWORD], "bob")
    b64 = base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
    text = f"raw {PASSWORD} pair bob:{PASSWORD} header Basic {b64} quoted pw-Zq8%21x%3Ay%40z%2F%25"
    assert scrub(text) == "raw *** pair *** header Basic *** quoted ***"
    assert not Scrubber([]) and Scrubber([""])("x") == "x"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:p@h:9091/x?token=t#f", "http://h:9091/x"),
        ("https://[::1]:9091", "https://[::1]:9091"),
        ("http://h:notaport", "http://h"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "host", "password"),
    [
        ("http://bob:pa/ss@gw.example:9091", "http://gw.example:9091", "pa/ss"),
        ("http://bob:12/ss@gw.example:9091/", "http://gw.example:9091", "12/ss"),
        ("http://bob:p@ss@gw.example", "http://gw.example", "p@ss"),
        ("http://bob:p?s#s@gw.example", "http://gw.example", "p?s#s"),
        ("http://bob:p%2Fss@[::1]:9091/x", "http://[::1]:9091/x", "p/ss"),
    ],
)
def test_unencoded_passwords_are_split_off_and_never_shown(url: str, host: str, password: str) -> None:
    c = HttpClient(url)
    assert c.display_url == host
    assert c.auth.username == "bob" and c.auth.password is not None
    assert c.auth.password.reveal() == password
    assert redact_url(url).rstrip("/") == host


def test_at_sign_in_a_query_is_not_user_info() -> None:
    c = HttpClient("http://gw:9091/x?owner=a@b.example")
    assert c.display_url == "http://gw:9091/x" and c.auth.username is None


class EarlyAnswer:
    """A raw loopback server that answers as soon as it has the request head and closes without
    reading the body (as a gateway rejecting credentials does), with a reset."""

    def __init__(self, put_status: int, get_status: int) -> None:
        import struct
        import threading

        self.statuses = {"PUT": put_status, "GET": get_status}
        self.methods: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._linger = struct.pack("ii", 1, 0)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                head += chunk
            method = head.split(b" ", 1)[0].decode()
            self.methods.append(method)
            status = self.statuses.get(method, 500)
            conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, self._linger)
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_an_answer_lost_while_the_body_is_sent_is_learnt_with_a_bodyless_probe() -> None:
    server = EarlyAnswer(put_status=401, get_status=401)
    try:
        http = client(server.url, retries=3)
        with pytest.raises(PushError, match=r"authentication failed \(HTTP 401\)"):
            http.request("PUT", "/metrics/job/x", b"x" * 16_000_000)
        assert server.methods[0] == "PUT" and "GET" in server.methods
        assert server.methods.count("PUT") == 1  # an auth failure is not retried
    finally:
        server.close()


def test_a_connection_closed_mid_body_without_an_auth_problem_is_retried() -> None:
    server = EarlyAnswer(put_status=503, get_status=405)
    sleeps = Sleeps()
    try:
        http = client(server.url, sleeps, retries=2)
        with pytest.raises(PushError, match="closed the connection while the request was sent"):
            http.request("PUT", "/metrics/job/x", b"x" * 16_000_000)
        assert server.methods.count("PUT") == 3
    finally:
        server.close()


def test_timeout_is_a_deadline_for_the_whole_request() -> None:
    """A server dripping its answer one byte at a time never trips a per-read timeout; the
    deadline ends each attempt, so a push is bounded by (retries + 1) x timeout plus backoff."""
    sleeps = Sleeps()
    with Loopback([Drip(interval=0.1, seconds=120)]) as srv:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as exc:
            client(srv.url, sleeps, retries=2, timeout=0.5).request("PUT", "/x", b"body")
        elapsed = time.monotonic() - started
    assert exc.value.retryable
    assert "did not answer within 0.5s after 3 attempts" in str(exc.value)
    assert len(srv.seen) == 3
    assert sleeps.calls == [1.0, 2.0]
    assert elapsed < 60  # generous: without the deadline each attempt takes the full 120 s


def test_retry_after_is_honoured_and_capped() -> None:
    sleeps = Sleeps()
    script = [
        Reply(429, headers=(("Retry-After", "7"),)),
        Reply(503, headers=(("Retry-After", "86400"),)),
        Reply(503, headers=(("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"),)),  # in the past
        Reply(503, headers=(("Retry-After", "soon"),)),  # unusable: backoff
        Reply(200),
    ]
    with Loopback(script) as srv:
        assert client(srv.url, sleeps, retries=4, backoff=1.0).request("PUT", "/x", b"").status == 200
    assert sleeps.calls == [7.0, MAX_BACKOFF, 4.0, 8.0]


def test_a_404_from_a_url_ending_in_metrics_says_to_drop_the_path() -> None:
    with Loopback([Reply(404, b"404 page not found")]) as srv, pytest.raises(DeliveryError) as exc:
        client(srv.url + "/metrics").request("PUT", "/metrics/job/x", b"")
    assert "without the /metrics path" in str(exc.value)
    with Loopback([Reply(404, b"404 page not found")]) as srv, pytest.raises(DeliveryError) as exc:
        client(srv.url + "/gw").request("PUT", "/metrics/job/x", b"")
    assert "/metrics path" not in str(exc.value)


def test_server_text_is_shown_without_terminal_control_sequences() -> None:
    body = b"bad \x1b[2J\x1b[1;1Hfake prompt\x1b]0;pwned\x07 \r\nline\x00two\x9b"
    with Loopback([Reply(400, body)]) as srv, pytest.raises(DeliveryError) as exc:
        client(srv.url).request("PUT", "/x", b"")
    message = str(exc.value)
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in message), repr(message)
    assert "fake prompt" in message and "pwned" not in message
