from __future__ import annotations

from django import forms

from partners.models import Partner
from reviews.models import DeadlineAction, ReviewerMode, ReviewItem


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=ReviewItem.Decision.choices, widget=forms.RadioSelect)
    comment = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required to revoke or narrow (for narrow: what to remove).",
    )


class StartCampaignForm(forms.Form):
    partner = forms.ModelChoiceField(queryset=Partner.objects.exclude(status=Partner.Status.OFFBOARDED))
    reviewer = forms.ChoiceField(
        choices=[("", "As the partner's settings say"), *ReviewerMode.choices], required=False
    )


class ReviewSettingsForm(forms.Form):
    interval_days = forms.IntegerField(min_value=7, max_value=730, label="Days between reviews")
    reviewer = forms.ChoiceField(choices=ReviewerMode.choices)
    response_days = forms.IntegerField(min_value=1, max_value=365, label="Days to answer")
    on_deadline = forms.ChoiceField(choices=DeadlineAction.choices, label="At the deadline")
