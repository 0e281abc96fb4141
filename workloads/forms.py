from __future__ import annotations

from typing import Any

from django import forms

from grants.models import Role


class PipelineForm(forms.Form):
    name = forms.SlugField(max_length=48, help_text="Letters, digits and dashes, e.g. deploy-prod.")
    role = forms.ModelChoiceField(queryset=Role.objects.none(), help_text="The one role it may use.")
    issuer = forms.URLField(
        max_length=500, help_text="Your CI's OIDC issuer, e.g. https://token.actions.githubusercontent.com"
    )
    audience = forms.CharField(max_length=255, help_text="The audience your job asks its CI for.")
    claims = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line, name=value, each an exact value: e.g. repository=acme/infra",
    )
    span_minutes = forms.IntegerField(
        min_value=15, max_value=60, initial=15, label="Credentials last (minutes)"
    )

    def __init__(self, *args: Any, partner_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = Role.objects.filter(partner_id=partner_id).order_by("name")  # type: ignore[attr-defined]

    def clean_claims(self) -> dict[str, str]:
        claims: dict[str, str] = {}
        for line in self.cleaned_data["claims"].splitlines():
            if not line.strip():
                continue
            name, equals, value = line.partition("=")
            if not equals or not name.strip() or not value.strip():
                raise forms.ValidationError(f"“{line[:80]}” is not name=value.")
            claims[name.strip()] = value.strip()
        return claims
