"""The form that asks for a report: kind, unit, pathways and period."""

from __future__ import annotations

from datetime import date, timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.permissions import ALL_ROLES, units_for
from pathways.models import Pathway, PathwayVersion

from .models import ReportRun, financial_year_of
from .reports import ReportParameters

PERIODS = [
    ("12m", "The last 12 months"),
    ("fytd", "This financial year to date"),
    ("lastfy", "The last whole financial year (compares with budget)"),
    ("custom", "The dates below"),
]


def period_dates(period: str, today: date) -> tuple[date, date] | None:
    fy = financial_year_of(today)
    if period == "12m":
        return today - timedelta(days=364), today
    if period == "fytd":
        return date(fy, 4, 1), today
    if period == "lastfy":
        return date(fy - 1, 4, 1), date(fy, 3, 31)
    return None


class ReportRequestForm(forms.Form):
    kind = forms.ChoiceField(label="Report", choices=ReportRun.Kind.choices)
    org_unit = forms.ChoiceField(label="Organisational unit", help_text="The unit and everything under it.")
    pathways = forms.MultipleChoiceField(
        label="Pathways",
        required=False,
        help_text="Leave empty for all pathways.",
        widget=forms.SelectMultiple(attrs={"size": 4}),
    )
    period = forms.ChoiceField(label="Episodes started in", choices=PERIODS, initial="12m")
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["org_unit"].choices = [(u.code, u.name) for u in units_for(user, *ALL_ROLES).order_by("path")]
        self.fields["pathways"].choices = list(
            Pathway.objects.filter(versions__status=PathwayVersion.Status.PUBLISHED)
            .distinct()
            .order_by("code")
            .values_list("code", "name")
        )

    def clean(self):
        data = super().clean()
        period = data.get("period")
        if not period:
            return data
        dates = period_dates(period, timezone.localdate())
        if dates is None:
            if not data.get("date_from") and "date_from" not in self.errors:
                self.add_error("date_from", "Give the first start date, or choose a period above.")
            if not data.get("date_to") and "date_to" not in self.errors:
                self.add_error("date_to", "Give the last start date, or choose a period above.")
            if data.get("date_from") and data.get("date_to"):
                dates = data["date_from"], data["date_to"]
        if self.errors or dates is None:
            return data
        try:
            self.parameters = ReportParameters.from_dict(
                {
                    "org_unit": data["org_unit"],
                    "pathways": data.get("pathways") or [],
                    "date_from": dates[0],
                    "date_to": dates[1],
                }
            )
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                self.add_error(name if name in self.fields else None, messages)
        return data
