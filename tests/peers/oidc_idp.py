"""A real OpenID Connect identity provider on loopback, for tests and the local demo.

It runs ``demo/oidc-idp/server.mjs`` (the npm package ``oidc-provider``) under Node. Install its
dependencies once with ``npm ci --prefix demo/oidc-idp``.

    users = [OidcUser("alice", "alice-pw", sub="acme-0001", email="alice@acme.example",
                      name="Alice Martin", groups=["engineers"], amr=["pwd", "otp"], acr="urn:porte:mfa")]
    clients = [{"client_id": "porte", "client_secret": "s3cret",
                "redirect_uris": ["http://127.0.0.1:8000/accounts/oidc/acme/login/callback/"]}]
    with OidcIdp(clients, users, title="Acme Corp sign-in") as idp:
        ...  # discovery at f"{idp.issuer}/.well-known/openid-configuration"
"""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

import requests

from tests.peers.common import FormParser as _FormParser
from tests.peers.common import PeerProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_DIR = REPO_ROOT / "demo" / "oidc-idp"
READY_TIMEOUT_S = 15.0
MAX_REDIRECTS = 20


class OidcIdpError(RuntimeError):
    """The IdP could not be started, or a sign-in could not be carried out."""


@dataclass
class OidcUser:
    """A user of the IdP. ``amr`` and ``acr`` are what the IdP reports for a password sign-in."""

    username: str
    password: str
    sub: str
    email: str
    name: str
    groups: list[str]
    amr: list[str]
    acr: str
    email_verified: bool = True
    # More claims in its ID tokens (a CI pipeline's: repository, ref, environment...).
    claims: dict[str, str] = field(default_factory=dict)


class OidcIdp(PeerProcess):
    """Runs the IdP for the duration of a ``with`` block (or between ``start()`` and ``stop()``).

    ``clients`` are dicts with ``client_id``, ``client_secret``, ``redirect_uris`` and optionally
    ``post_logout_redirect_uris``; they authenticate at the token endpoint with
    client_secret_basic (client_secret_post is accepted too) and must use PKCE (S256).
    Keys and sessions are in memory: every start is a fresh IdP.
    """

    def __init__(
        self,
        clients: list[dict[str, Any]],
        users: list[OidcUser],
        title: str = "Acme Corp sign-in",
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.clients = clients
        self.users = users
        self.title = title
        self.host = host
        self.port = port or 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def issuer(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def log(self) -> str:
        """What the IdP wrote to stderr so far (warnings and errors; never passwords or tokens)."""
        if self._tmp is None:
            return ""
        return (Path(self._tmp.name) / "idp.log").read_text(errors="replace")

    def start(self, *, attempts: int = 3) -> Self:
        """Start the IdP and wait until it listens, starting it again if it never becomes ready: about one start
        in sixty, node hangs (futex wait) inside `crypto.generateKeyPairSync` at the top of
        demo/oidc-idp/server.mjs, before it listens, and a fresh process starts normally. Any other failure is
        raised at once."""
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once()
            except OidcIdpError as exc:
                if "did not print" not in str(exc) or attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> Self:
        if self._proc is not None:
            raise OidcIdpError("the IdP is already running")
        if not (SERVER_DIR / "node_modules" / "oidc-provider").is_dir():
            raise OidcIdpError(
                f"{SERVER_DIR / 'node_modules'} is missing: run `npm ci --prefix demo/oidc-idp` "
                f"in {REPO_ROOT} first"
            )
        node = shutil.which("node")
        if node is None:
            raise OidcIdpError("`node` is not on PATH (Node.js 20 or later is needed for the IdP)")
        if not self.port:
            self.port = free_port(self.host)

        self._tmp = tempfile.TemporaryDirectory(prefix="porte-oidc-idp-")
        tmp = Path(self._tmp.name)
        config = {
            "host": self.host,
            "port": self.port,
            "issuer": self.issuer,
            "title": self.title,
            "clients": self.clients,
            "users": [asdict(user) for user in self.users],
        }
        config_path = tmp / "config.json"
        config_path.write_text(json.dumps(config))
        with (tmp / "idp.log").open("wb") as log:
            self._proc = subprocess.Popen(
                [node, str(SERVER_DIR / "server.mjs"), str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        expected = f"ready {self.issuer}"
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self._proc.stdout], [], [], remaining)
            if not readable:
                break
            line = self._proc.stdout.readline().decode(errors="replace").strip()
            if line == expected:
                return
            if not line and self._proc.poll() is not None:
                raise OidcIdpError(f"the IdP exited with code {self._proc.returncode}:\n{self.log()}")
        raise OidcIdpError(
            f"the IdP did not print {expected!r} within {READY_TIMEOUT_S:.0f} s:\n{self.log()}"
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


# ---------------------------------------------------------------------------------------------
# Signing in with requests


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def _follow(
    session: requests.Session, response: requests.Response, stop_at: tuple[str, str | None, int | None] | None
) -> requests.Response:
    """Follows redirects with GET, one hop at a time. Returns the first response that is not a
    redirect, or the redirect whose target leaves origin ``stop_at`` (not followed)."""
    for _ in range(MAX_REDIRECTS):
        if not response.is_redirect:
            return response
        target = urljoin(response.url, response.headers["Location"])
        if stop_at is not None and _origin(target) != stop_at:
            return response
        response = session.get(target, allow_redirects=False)
    raise OidcIdpError(f"more than {MAX_REDIRECTS} redirects, last at {response.url}")


def sign_in(
    session: requests.Session,
    start: str | requests.Response,
    username: str,
    password: str,
    *,
    follow_callback: bool = True,
) -> requests.Response:
    """Signs in at the IdP's login page the way a browser would, and returns where that leads.

    ``start`` is where the sign-in begins, either
      - a URL (fetched with GET) that redirects, possibly through several hops, to the IdP's
        authorization endpoint, e.g. the authorization URL itself; or
      - a ``requests.Response`` that already is such a redirect, for relying parties whose login
        starts with a POST: e.g. allauth's ``/accounts/oidc/<id>/login/`` posted with its CSRF
        token and ``allow_redirects=False``.

    Redirects are followed with GET up to the IdP's login form, which is filled with
    ``username`` and ``password`` and posted. Redirects are then followed while they stay on the
    IdP. The first one that leaves the IdP (to the client's redirect_uri, with ``code`` and
    ``state``) is:
      - followed, with all further redirects, if ``follow_callback`` is true: the result is the
        relying party's final page after its callback (see ``response.history`` for the hops);
      - not followed if ``follow_callback`` is false: the result is that redirect response, and
        ``response.headers["Location"]`` holds the redirect_uri with the authorization response.

    If the password is wrong the result is the IdP's login page again (status 401, with the
    message "Wrong username or password."), and nothing is sent to the relying party.
    Raises ``OidcIdpError`` if no login form is reached.
    """
    if isinstance(start, str):
        start = session.get(start, allow_redirects=False)
    login_page = _follow(session, start, stop_at=None)
    parser = _FormParser()
    parser.feed(login_page.text)
    form = next((f for f in parser.forms if f.has_password), None)
    if form is None:
        raise OidcIdpError(
            f"no login form at {login_page.url} (HTTP {login_page.status_code}); "
            "if this session is already signed in at the IdP, use a fresh requests.Session"
        )

    data = {**form.fields, "username": username, "password": password}
    action = urljoin(login_page.url, form.action or login_page.url)
    response = session.post(action, data=data, allow_redirects=False)
    response = _follow(session, response, stop_at=_origin(login_page.url))
    if follow_callback and response.is_redirect:
        return session.get(urljoin(response.url, response.headers["Location"]))
    return response
