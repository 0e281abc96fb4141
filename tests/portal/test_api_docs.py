"""The API's front door and its documentation: /api/v1/ says where everything is; /api/docs/ is Swagger UI over
the published schema, served by Porte itself and within the pages' CSP (no inline script, no other origin)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.helpers import INLINE_SCRIPT_OR_STYLE

pytestmark = pytest.mark.django_db


def test_the_api_index_says_where_the_schema_docs_and_collections_are() -> None:
    response = Client().get("/api/v1/")  # nobody signed in: what the API offers is no secret

    assert response.status_code == 200
    index = response.json()
    assert index["schema"] == "http://testserver/api/schema/"
    assert index["documentation"] == "http://testserver/api/docs/"
    assert index["collections"]["grants"] == "http://testserver/api/v1/grants/"
    assert "Bearer" in index["authentication"]
    # The collections themselves still need a session or a token.
    assert Client().get("/api/v1/grants/").status_code in (401, 403)


def test_the_docs_page_loads_swagger_ui_from_porte_without_inline_script() -> None:
    client = Client()
    page = client.get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assert not INLINE_SCRIPT_OR_STYLE.search(html) and "<style" not in html
    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert sources and all(src.startswith("/") for src in sources), sources  # Porte's own origin only
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in sources
    assert "default-src 'self'" in page["Content-Security-Policy"]

    # Its set-up script is a request of its own, pointing Swagger UI at the schema.
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()


def test_favicon_is_porte_s_icon() -> None:
    response = Client().get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/porte/favicon.svg"
