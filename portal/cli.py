"""`porte`: AWS credentials from Porte for the AWS CLI and SDKs, as a `credential_process`.

    [profile porte]
    credential_process = porte credentials --url https://porte.example.com

It authenticates with a personal API token (created at <url>/tokens/) from PORTE_TOKEN or ~/.config/porte/token.
Standard library only, so it stays quick: the AWS CLI runs it every time it needs credentials. On success stdout
holds exactly the credential_process JSON; on failure stderr holds one line saying what to do, and the exit
status is non-zero. The token is never printed.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

TIMEOUT_SECONDS = 30
CREDENTIAL_KEYS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")


class CliError(Exception):
    """What went wrong and what to do about it, in one line for the person at the terminal."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would send the Authorization header on to wherever a redirect points; refuse to follow instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def token_path() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "porte" / "token"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_url(given: str | None) -> str:
    url = (given or os.environ.get("PORTE_URL") or "").strip().rstrip("/")
    if not url:
        raise CliError("Set PORTE_URL or pass --url with Porte's address, e.g. https://porte.example.com")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise CliError(f"{url} is not a web address: pass Porte's address, e.g. https://porte.example.com")
    if parsed.scheme == "http" and not _is_loopback(parsed.hostname):
        raise CliError(f"Refusing to send your token over plain http to {parsed.hostname}: use https://")
    return url


def load_token(url: str) -> str:
    """The token from PORTE_TOKEN, else from the token file, which must be private to its owner."""
    token, source = os.environ.get("PORTE_TOKEN", "").strip(), "PORTE_TOKEN"
    if not token:
        path = token_path()
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise CliError(
                f"No Porte token: create one at {url}/tokens/ and save it in {path} (or set PORTE_TOKEN)"
            ) from None
        if os.name == "posix" and mode & 0o077:
            raise CliError(
                f"{path} can be read or changed by other users (mode {mode & 0o777:o}): "
                f"run `chmod 600 {path}`, and create a new token if others may have read it"
            )
        try:
            token, source = path.read_text().strip(), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"Cannot read {path}: {exc}") from None
    if not token.startswith("porte_") or len(token.split()) != 1:
        raise CliError(
            f"{source} does not hold a Porte token (they start with porte_): create one at {url}/tokens/"
        )
    return token


class HttpStatus(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Porte answered HTTP {status}: {detail}")
        self.status, self.detail = status, detail


class Porte:
    def __init__(self, url: str, token: str) -> None:
        self.url, self._token = url, token

    def call(self, method: str, path: str) -> Any:
        """JSON from the API. 401, 403, redirects and network failures become a CliError; other error statuses
        an HttpStatus for the caller to explain."""
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked by resolve_url)
            f"{self.url}{path}",
            method=method,
            headers={
                "Authorization": f"Bearer {self._token}",
                "Accept": "application/json",
                "User-Agent": "porte-cli",
            },
        )
        try:
            with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise self._refusal(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise CliError(f"Cannot reach Porte at {self.url}: {reason}") from None
        try:
            return json.loads(body)
        except ValueError:
            raise CliError(f"{self.url} did not answer like Porte's API: check the address") from None

    def _refusal(self, exc: urllib.error.HTTPError) -> Exception:
        if 300 <= exc.code < 400:
            return CliError(
                f"Porte at {self.url} redirects to {exc.headers.get('Location')}: use that address instead"
            )
        try:
            detail = str(json.loads(exc.read()).get("detail", ""))
        except (ValueError, AttributeError, OSError):
            detail = ""
        if exc.code == 401:
            return CliError(
                f"Porte rejected the token (revoked or expired): create a new one at {self.url}/tokens/"
            )
        if exc.code == 403:
            return CliError(f"Porte refused the request: {detail or 'permission denied'}")
        return HttpStatus(exc.code, detail or exc.reason)


# --- commands -------------------------------------------------------------------------------------------------


def _pick_grant(porte: Porte, role: str | None) -> int:
    """The caller's own active grant (for `role`, if given). A partner admin's list holds colleagues' grants
    too, and only the holder can mint: hence the filter on who the caller is."""
    me = porte.call("GET", "/api/v1/me/")
    grants = [
        g
        for g in porte.call("GET", "/api/v1/grants/")
        if g["user"] == me["public_id"] and g["status"] == "active" and role in (None, g["role"])
    ]
    if not grants:
        which = f" for role {role}" if role else ""
        raise CliError(f"No active grant{which}: request access at {porte.url}/")
    roles = sorted({g["role"] for g in grants})
    if len(roles) > 1:
        raise CliError(f"You have active grants for {', '.join(roles)}: choose one with --role")
    return max(grants, key=lambda g: g["ends_at"])["id"]


def credentials(porte: Porte, *, grant_id: int | None, role: str | None) -> dict[str, Any]:
    if grant_id is None:
        grant_id = _pick_grant(porte, role)
    try:
        payload = porte.call("POST", f"/api/v1/grants/{grant_id}/credentials/")
    except HttpStatus as exc:
        if exc.status == 404:
            raise CliError(f"You have no grant {grant_id}: list yours with `porte grants`") from None
        if exc.status == 409:
            raise CliError(
                f"Grant {grant_id} cannot be used now: {exc.detail} See {porte.url}/grants/{grant_id}/"
            ) from None
        if exc.status == 429:
            raise CliError(f"Porte is limiting credential requests: {exc.detail}") from None
        raise CliError(f"Porte could not issue credentials (HTTP {exc.status}): {exc.detail}") from None
    if (
        not isinstance(payload, dict)
        or payload.get("Version") != 1
        or not all(isinstance(payload.get(key), str) for key in CREDENTIAL_KEYS)
    ):
        raise CliError(f"{porte.url} answered without credentials: check the address")
    return payload


def _when(value: str | None) -> str:
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M") if value else "-"


def grants_table(porte: Porte) -> str:
    try:
        me = porte.call("GET", "/api/v1/me/")
        grants = porte.call("GET", "/api/v1/grants/")
    except HttpStatus as exc:
        raise CliError(f"Porte could not list grants (HTTP {exc.status}): {exc.detail}") from None
    if not grants:
        return f"No grants yet: request access at {porte.url}/"
    # A grant that ended (expired, revoked) shows when it did, as the web does; the others when they will.
    rows = [("GRANT", "ROLE", "PARTNER", "STATUS", "END (UTC)", "HOLDER")]
    rows += [
        (
            str(g["id"]),
            g["role"],
            g["partner"],
            g["status"],
            _when(g.get("ended_at") or g["ends_at"]),
            "you" if g["user"] == me["public_id"] else g["user"],
        )
        for g in grants
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


# --- entry point ----------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="porte",
        description="AWS credentials from Porte. The token comes from $PORTE_TOKEN or ~/.config/porte/token.",
    )
    parser.add_argument("--url", help="Porte's address (default: $PORTE_URL)")
    # Also accepted after the command; SUPPRESS keeps a subcommand from resetting a --url given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="Porte's address (default: $PORTE_URL)")
    commands = parser.add_subparsers(dest="command", required=True)
    creds = commands.add_parser(
        "credentials",
        parents=[common],
        help="print credential_process JSON for one of your active grants",
        description="Without --grant or --role, uses your only active grant.",
    )
    which = creds.add_mutually_exclusive_group()
    which.add_argument("--grant", type=int, metavar="ID", help="the grant's number")
    which.add_argument("--role", metavar="SLUG", help="your active grant for this role")
    commands.add_parser("grants", parents=[common], help="list your grants")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        url = resolve_url(args.url)
        porte = Porte(url, load_token(url))
        if args.command == "credentials":
            output = json.dumps(credentials(porte, grant_id=args.grant, role=args.role))
        else:
            output = grants_table(porte)
    except (CliError, HttpStatus) as exc:
        print(f"porte: {exc}", file=sys.stderr)
        return 1
    except (KeyError, TypeError):
        # JSON, but not shaped like Porte's answers: most likely another service at that address.
        print(f"porte: {url} did not answer like Porte's API: check the address", file=sys.stderr)
        return 1
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
