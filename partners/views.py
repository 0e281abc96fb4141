from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from partners.selectors import identity_provider_for_email


class SignInForm(forms.Form):
    email = forms.EmailField(
        label="Work email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "username"})
    )


@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    """Partners sign in through their own IdP, found from the domain of their work email."""
    if request.user.is_authenticated:
        return redirect("home")
    form = SignInForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        idp = identity_provider_for_email(form.cleaned_data["email"])
        if idp is not None:
            return redirect(reverse("openid_connect_login", kwargs={"provider_id": idp.provider_id}))
        form.add_error(
            "email",
            "No organisation with access to Porte uses this email domain. "
            "Check the address, or ask your Porte sponsor to onboard your organisation.",
        )
        return render(request, "partners/sign_in.html", {"form": form}, status=400)
    return render(request, "partners/sign_in.html", {"form": form})
