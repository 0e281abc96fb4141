"""`make run`: Porte with everything it needs, on this machine alone.

Starts moto (local AWS), the OIDC IdPs of Acme and Globex (oidc-provider), seeds the demo, then the web server,
a Celery worker and beat; prints where to sign in. E-mails are written to var/demo/mail/. Ctrl-C stops
everything. moto keeps nothing between runs, so the demo database is rebuilt each time too.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "demo"
PY = sys.executable
HOST = "127.0.0.1"
WEB_PORT = int(os.environ.get("PORTE_PORT", "8000"))
MOTO_PORT = int(os.environ.get("PORTE_MOTO_PORT", "5055"))
IDP_PORT = int(os.environ.get("PORTE_IDP_PORT", "9000"))
# Globex's own IdP: the second partner, which onboards itself in the demo.
GLOBEX_IDP_PORT = int(os.environ.get("PORTE_GLOBEX_IDP_PORT", "9001"))
ADMIN_PASSWORD = os.environ.get("PORTE_DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
ADMIN_TOTP_SECRET = base64.b32encode(secrets.token_bytes(20)).decode()
# Carol, the second staff member: the second pair of eyes that role changes need.
CAROL_PASSWORD = secrets.token_urlsafe(12)
CAROL_TOTP_SECRET = base64.b32encode(secrets.token_bytes(20)).decode()
GLOBEX_USERS = [
    {
        "username": "gina",
        "password": "gina-demo-pw",
        "sub": "globex-0001",
        "email": "gina@globex.example",
        "email_verified": True,
        "name": "Gina Hart",
        "groups": ["it-admins"],
        "amr": ["pwd", "otp"],
        "acr": "urn:porte:mfa",
    },
    {
        "username": "glen",
        "password": "glen-demo-pw",
        "sub": "globex-0002",
        "email": "glen@globex.example",
        "email_verified": True,
        "name": "Glen Ortiz",
        "groups": ["engineers"],
        "amr": ["pwd", "otp"],
        "acr": "urn:porte:mfa",
    },
]
DEMO_USERS = [
    {
        "username": "alice",
        "password": "alice-demo-pw",
        "sub": "acme-0001",
        "email": "alice@acme.example",
        "email_verified": True,
        "name": "Alice Martin",
        "groups": ["engineers"],
        "amr": ["pwd", "otp"],
        "acr": "urn:porte:mfa",
    },
    {
        "username": "bob",
        "password": "bob-demo-pw",
        "sub": "acme-0002",
        "email": "bob@acme.example",
        "email_verified": True,
        "name": "Bob Stone",
        "groups": ["finance"],
        "amr": ["pwd"],
        "acr": "urn:porte:pwd",
    },
]

children: list[tuple[str, subprocess.Popen[bytes]]] = []


def fail(message: str) -> None:
    print(f"\nmake run: {message}", file=sys.stderr)
    stop_all()
    sys.exit(1)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) != 0


def redis_answers() -> bool:
    try:
        with socket.create_connection((HOST, 6379), timeout=0.3):
            return True
    except OSError:
        return False


def start(name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (VAR / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    children.append((name, proc))
    return proc


def answers(url: str, timeout: float) -> bool:
    """Whether `url` answers within `timeout` (stops at once if a child process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child_name, proc in children:
            if proc.poll() is not None:
                fail(f"{child_name} exited early; see {VAR / (child_name + '.log')}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback URL built above
                return True
        except OSError:
            time.sleep(0.2)
    return False


def wait_http(name: str, url: str, timeout: float = 60) -> None:
    if not answers(url, timeout):
        fail(f"{name} did not answer at {url} within {timeout:.0f} s; see {VAR / (name + '.log')}")


def start_idp(name: str, cmd: list[str], env: dict[str, str], url: str, attempts: int = 3) -> None:
    """About one start in sixty, node hangs generating the IdP's keys before it listens; a fresh process starts
    normally, so a start that does not answer in 20 s is stopped and made again."""
    for _ in range(attempts):
        proc = start(name, cmd, env)
        if answers(url, 20):
            return
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        children.remove((name, proc))
    fail(f"{name} did not answer at {url} after {attempts} starts; see {VAR / (name + '.log')}")


def idp_config(
    name: str, port: int, title: str, clients: list[dict[str, object]], users: list[dict[str, object]]
) -> Path:
    path = VAR / f"{name}.json"
    issuer = f"http://{HOST}:{port}"
    path.write_text(
        json.dumps(
            {
                "host": HOST,
                "port": port,
                "issuer": issuer,
                "title": title,
                "clients": clients,
                "users": users,
            },
            indent=2,
        )
    )
    return path


def stop_all(*_: object) -> None:
    for _name, proc in reversed(children):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for _name, proc in children:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    started = time.monotonic()
    for name, port in (
        ("web", WEB_PORT),
        ("moto", MOTO_PORT),
        ("IdP", IDP_PORT),
        ("Globex IdP", GLOBEX_IDP_PORT),
    ):
        if not port_free(port):
            fail(
                f"port {port} for the {name} is taken; stop what uses it or set "
                f"PORTE_PORT / PORTE_MOTO_PORT / PORTE_IDP_PORT."
            )
    if not (ROOT / "demo" / "oidc-idp" / "node_modules").exists():
        fail("the demo IdP is not installed: run `npm ci --prefix demo/oidc-idp` (make run does this).")
    shutil.rmtree(VAR, ignore_errors=True)
    (VAR / "broker" / "processed").mkdir(parents=True)

    public_url = f"http://{HOST}:{WEB_PORT}"
    issuer = f"http://{HOST}:{IDP_PORT}"
    client_secret = secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "PORTE_VAR_DIR": str(VAR),
        "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{VAR / 'porte.sqlite3'}"),
        "CELERY_BROKER_URL": os.environ.get(
            "CELERY_BROKER_URL", "redis://127.0.0.1:6379/0" if redis_answers() else "filesystem://"
        ),
        "AWS_ENDPOINT_URL": f"http://{HOST}:{MOTO_PORT}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PORTE_PUBLIC_URL": public_url,
        # The demo's mailbox: every e-mail Porte sends (notices, invitations) is a file there.
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(VAR / "mail"),
        "PYTHONUNBUFFERED": "1",
    }
    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(0)))

    print("Starting local AWS (moto) and the partners' identity providers ...", flush=True)
    start("moto", [PY, "-m", "moto.server", "-H", HOST, "-p", str(MOTO_PORT)], env)
    server = str(ROOT / "demo" / "oidc-idp" / "server.mjs")
    acme_clients = [
        {
            "client_id": "porte-demo",
            "client_secret": client_secret,
            "redirect_uris": [f"{public_url}/accounts/oidc/acme/login/callback/"],
        }
    ]
    start_idp(
        "idp",
        ["node", server, str(idp_config("idp", IDP_PORT, "Acme Corp sign-in", acme_clients, DEMO_USERS))],
        env,
        f"{issuer}/.well-known/openid-configuration",
    )
    # Globex's IT contact registers this client with Porte themselves (self-service onboarding).
    globex_issuer, globex_secret = f"http://{HOST}:{GLOBEX_IDP_PORT}", secrets.token_urlsafe(24)
    globex_clients = [
        {
            "client_id": "porte-globex",
            "client_secret": globex_secret,
            "redirect_uris": [f"{public_url}/accounts/oidc/globex/login/callback/"],
        }
    ]
    globex_config = idp_config("globex-idp", GLOBEX_IDP_PORT, "Globex sign-in", globex_clients, GLOBEX_USERS)
    start_idp(
        "globex-idp",
        ["node", server, str(globex_config)],
        env,
        f"{globex_issuer}/.well-known/openid-configuration",
    )
    wait_http("moto", f"http://{HOST}:{MOTO_PORT}/moto-api/")

    print("Creating the database and seeding the demo ...", flush=True)
    for cmd in (
        ["migrate", "-v0"],
        [
            "porte_demo",
            "--issuer",
            issuer,
            "--client-secret",
            client_secret,
            "--admin-password",
            ADMIN_PASSWORD,
            "--admin-totp-secret",
            ADMIN_TOTP_SECRET,
            "--carol-password",
            CAROL_PASSWORD,
            "--carol-totp-secret",
            CAROL_TOTP_SECRET,
            "--invitation-link-file",
            str(VAR / "globex-invitation.txt"),
            "--scim-token-file",
            str(VAR / "acme-scim-token.txt"),
        ],
    ):
        result = subprocess.run([PY, "manage.py", *cmd], cwd=ROOT, env=env, check=False)
        if result.returncode:
            fail(f"`manage.py {' '.join(cmd[:1])}` failed (exit {result.returncode}).")

    invitation_link = (VAR / "globex-invitation.txt").read_text().strip()
    start("worker", [PY, "-m", "celery", "-A", "portal", "worker", "-l", "INFO", "-c", "2"], env)
    start(
        "beat",
        [PY, "-m", "celery", "-A", "portal", "beat", "-l", "INFO", "-s", str(VAR / "beat-schedule")],
        env,
    )
    start("web", [PY, "manage.py", "runserver", f"{HOST}:{WEB_PORT}", "--noreload"], env)
    wait_http("web", f"{public_url}/health/")

    print(
        f"""
Porte is running at {public_url}/   (started in {time.monotonic() - started:.0f} s)
  Partner sign-in:  {public_url}/sign-in/  with  alice@acme.example  → Acme's IdP: alice / alice-demo-pw
                    Alice is Acme's partner admin (group engineers); bob@acme.example → bob / bob-demo-pw
                    is a plain member (group finance) whose deploy request waits for an approver.
  Staff sign-in:    {public_url}/accounts/login/  admin / {ADMIN_PASSWORD}  then a TOTP code:
                    add otpauth://totp/Porte:admin?secret={ADMIN_TOTP_SECRET}&issuer=Porte to an authenticator,
                    or run  .venv/bin/python demo/totp.py {ADMIN_TOTP_SECRET}
                    Carol, the second staff member (four eyes):  carol / {CAROL_PASSWORD}
                    then  .venv/bin/python demo/totp.py {CAROL_TOTP_SECRET}

What to try (paths under {public_url}):
  as Alice  /                      request "Read-only inventory" (granted at once); open a grant for its timeline
                                   and CloudTrail activity (simulated: moto emits none)
            /partner/approvals/    approve Bob's deploy request
            /activity/             filter by person, service or errors; export CSV or JSON
            /reviews/              decide the open access review;   /partner/members/  Acme's people
            /                      request "Incident response" as break-glass: granted now, reviewed afterwards
  as Bob    /                      his deploy request, waiting for an approver
  as staff  /staff/                the queues: approvals, a role change awaiting you (the second person),
                                   break-glass reviews, access reviews, quarantined trail files
            /staff/partners/acme/  onboarding checklist, access conditions, roles
  A second partner onboards itself: Globex Corp's IT contact (Gina) got this invitation (var/demo/mail/):
            {invitation_link}
            open it, Start, OpenID Connect: issuer {globex_issuer}, client id porte-globex,
            client secret {globex_secret}; Test sign-in as gina / gina-demo-pw; Hand in for review.
  then as staff  /staff/partners/globex/   provision its AWS account (the steps show live), activate, add a role;
                 Carol approves the role's eligible groups (/staff/changes/);
                 glen@globex.example → glen / glen-demo-pw signs in and requests it
  Acme's directory (SCIM 2.0): base URL {public_url}/scim/v2/, its token in {VAR}/acme-scim-token.txt
            curl -s -H "Authorization: Bearer $(cat {VAR}/acme-scim-token.txt)" {public_url}/scim/v2/Users
            POST a User with externalId acme-0002 (Bob's subject) to adopt Bob; PATCH it active=false and
            his sessions, tokens and grants end at once
  API:              {public_url}/api/v1/   docs {public_url}/api/docs/   schema {public_url}/api/schema/
  Local AWS (moto): {env["AWS_ENDPOINT_URL"]}   Acme IdP: {issuer}   Globex IdP: {globex_issuer}
  Broker: {env["CELERY_BROKER_URL"]}   Logs: {VAR}/*.log   Mail: {VAR}/mail/
Ctrl-C stops everything.
""",
        flush=True,
    )
    try:
        while True:
            for name, proc in children:
                if proc.poll() is not None:
                    fail(f"{name} stopped (exit {proc.returncode}); see {VAR / (name + '.log')}")
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
        stop_all()


if __name__ == "__main__":
    main()
