"""Live regions: a part of a page that shows queued work as it progresses, without a reload and without a client
application. While the work is under way, the region asks the server for the page again every few seconds and
swaps itself for its newly rendered version (htmx: hx-get, hx-select, outerHTML). Once the work is done, the
server renders the region without these attributes, and the asking stops by itself.

    <section {% live "grant-status" while=refresh %}> ... </section>
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

# Seconds between two askings: queued work (activation, provisioning) takes seconds.
EVERY = 2


@register.simple_tag(takes_context=True)
def live(
    context: dict[str, Any], region: str, *, url: str = "", every: int = EVERY, **kwargs: Any
) -> SafeString:
    """The region's attributes. `while` (a keyword Python cannot name) says whether work is under way; `url` is
    what to ask (the page itself by default, of which only this region is kept)."""
    attributes = format_html('id="{}"', region)
    if not kwargs.get("while"):
        return attributes
    request = context["request"]
    return format_html(
        '{} hx-get="{}" hx-trigger="every {}s" hx-select="#{}" hx-swap="outerHTML"',
        attributes,
        url or request.get_full_path(),
        every,
        region,
    )
