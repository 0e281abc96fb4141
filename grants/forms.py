from __future__ import annotations

from datetime import timedelta

from django import forms

from grants.models import Role


class RoleChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Role) -> str:
        return f"{obj.name} (up to {obj.max_duration_minutes} minutes)"


class AccessRequestForm(forms.Form):
    role = RoleChoiceField(queryset=Role.objects.none(), empty_label=None)
    duration_minutes = forms.IntegerField(min_value=1, initial=60, label="Duration (minutes)")
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        help_text="What you will do, and the ticket it belongs to.",
    )

    def __init__(self, *args, roles, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = roles  # type: ignore[attr-defined]

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.cleaned_data["duration_minutes"])
