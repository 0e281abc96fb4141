"""A partner's directory as the tests drive it: SCIM requests with its bearer token, through Django's test
client (the whole middleware stack, the gate included)."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from directory import services
from partners.models import Partner
from portal.models import User

CONTENT_TYPE = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class Directory:
    def __init__(self, partner: Partner, staff: User, token: str | None = None) -> None:
        self.partner = partner
        self.token = token or services.directory_token_rotate(partner=partner, actor=staff)[1]
        self.client = Client()

    def _headers(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}

    def get(self, path: str) -> Any:
        return self.client.get(f"/scim/v2/{path}", **self._headers())

    def send(self, method: str, path: str, body: Any) -> Any:
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return getattr(self.client, method)(
            f"/scim/v2/{path}", data, content_type=CONTENT_TYPE, **self._headers()
        )

    def create_user(self, external_id: str, user_name: str, **extra: Any) -> dict[str, Any]:
        body = {"schemas": [USER], "externalId": external_id, "userName": user_name, "active": True, **extra}
        response = self.send("post", "Users", body)
        assert response.status_code == 201, response.content
        return dict(response.json())

    def create_group(self, name: str, member_ids: list[str]) -> dict[str, Any]:
        body = {"displayName": name, "members": [{"value": m} for m in member_ids]}
        response = self.send("post", "Groups", body)
        assert response.status_code == 201, response.content
        return dict(response.json())

    def patch(self, path: str, *operations: dict[str, Any]) -> Any:
        return self.send("patch", path, {"schemas": [PATCH], "Operations": list(operations)})


def scim_error(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 7644 §3.12 error document with `status`."""
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"] == CONTENT_TYPE
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status)
    assert body["detail"]
    return dict(body)
