"""SCIM's Error document (RFC 7644 §3.12), for Porte's own refusals and for completing django-scim2's."""

from __future__ import annotations

from typing import Any

from django_scim import constants


def error_document(status: int, detail: str) -> dict[str, Any]:
    """An Error document: its status as a string."""
    return {"schemas": [constants.SchemaURI.ERROR], "detail": detail, "status": str(status)}
