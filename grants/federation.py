"""AWS console sign-in through the federation endpoint (getSigninToken), from minted credentials."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import requests
from django.conf import settings

from portal.aws import Credentials


class ConsoleUnavailable(Exception):
    """The federation endpoint could not issue a sign-in token; CLI credentials still work."""


def console_sign_in_url(credentials: Credentials, *, issuer: str, destination: str | None = None) -> str:
    session = json.dumps(
        {
            "sessionId": credentials.access_key_id,
            "sessionKey": credentials.secret_access_key,
            "sessionToken": credentials.session_token,
        }
    )
    try:
        response = requests.get(
            settings.AWS_FEDERATION_URL, params={"Action": "getSigninToken", "Session": session}, timeout=10
        )
        response.raise_for_status()
        token = response.json()["SigninToken"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        # Never include the request (it carries the session) in the message.
        raise ConsoleUnavailable(
            f"The AWS console sign-in service at {settings.AWS_FEDERATION_URL} did not issue a sign-in token "
            f"({type(exc).__name__}). Use CLI credentials, or try again."
        ) from None
    query = urlencode(
        {
            "Action": "login",
            "Issuer": issuer,
            "Destination": destination or settings.AWS_CONSOLE_URL,
            "SigninToken": token,
        }
    )
    return f"{settings.AWS_FEDERATION_URL}?{query}"
