from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal import health as health_check
from portal import services
from portal.access import acting, acting_user, api_token_for_user, may_hold_api_tokens, public, signed_in
from portal.forms import ApiTokenForm
from portal.models import ApiToken, User
from portal.responses import add_service_errors


@public
@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness and database reachability, for load balancers and compose health checks."""
    if health_check.database_reachable():
        return JsonResponse({"status": "ok"})
    return JsonResponse({"status": "database unavailable"}, status=503)


@public
@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers and tools ask for /favicon.ico whatever the pages link to: the icon is Porte's static one."""
    response = redirect(static("porte/favicon.svg"), permanent=True)
    patch_cache_control(response, max_age=86400, public=True)
    return response


# --- personal API tokens: session-only pages (the token authentication class is consulted by the API alone) ----


def _token_holder(request: HttpRequest) -> User:
    user = acting_user(request)
    if not may_hold_api_tokens(user):
        # Like staff pages for partner users: the page does not exist for accounts that cannot use the API.
        raise Http404
    return user


def _token_list(request: HttpRequest, user: User, form: ApiTokenForm, status: int = 200) -> HttpResponse:
    now = timezone.now()
    tokens = ApiToken.objects.filter(user=user).select_related("user")
    context = {"form": form, "rows": [(token, token.state(now)) for token in tokens]}
    return render(request, "portal/api_tokens.html", context, status=status)


@signed_in
@never_cache
@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    user = _token_holder(request)
    form = ApiTokenForm(request.POST or None)
    if request.method != "POST" or not form.is_valid():
        return _token_list(request, user, form, status=400 if form.errors else 200)
    try:
        token, secret = services.api_token_create(
            user=user,
            name=form.cleaned_data["name"],
            expires_in=timedelta(days=form.cleaned_data["lifetime_days"]),
        )
    except ValidationError as exc:
        add_service_errors(form, exc, {"expires_in": "lifetime_days"})
        return _token_list(request, user, form, status=400)
    # Rendered, not redirected: the secret must not sit in a session or a message to survive a redirect.
    return render(
        request,
        "portal/api_token_created.html",
        {
            "token": token,
            "secret": secret,
            "porte_url": settings.PUBLIC_URL,
            "partner": acting(request).partner,
        },
    )


@signed_in
@require_POST
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    user = _token_holder(request)
    token = services.api_token_revoke(token=api_token_for_user(user, token_id), actor=user)
    messages.success(request, f"Token “{token.name}” revoked: it no longer works.")
    return redirect("api_tokens")
