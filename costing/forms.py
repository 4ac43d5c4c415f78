"""Finance forms: resources, rates, the capacity cost rate calculator, rate imports, budgets."""

from decimal import Decimal

from django import forms
from django.utils import timezone

from pathways.models import Pathway, Resource

from .models import financial_year_label, financial_year_of
from .rates import DEFAULT_PRACTICAL_FACTOR, financial_year_choices


def _fy_field(**kwargs) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        choices=lambda: financial_year_choices(back=4, ahead=2),
        coerce=int,
        label="Financial year",
        help_text="NHS financial years run April to March.",
        **kwargs,
    )


class ResourceForm(forms.Form):
    code = forms.CharField(max_length=40, help_text="Stable, e.g. THEATRE-NURSE. Cannot be changed later.")
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=Resource.Kind.choices)
    unit = forms.ChoiceField(choices=Resource.Unit.choices, help_text="What a planned quantity counts.")
    salaried = forms.BooleanField(
        required=False, help_text="Salaried staff: extra minutes consume capacity rather than cash."
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            del self.fields["code"]

    def clean_code(self):
        return self.cleaned_data["code"].strip().upper()


class RateForm(forms.Form):
    financial_year = _fy_field()
    rate = forms.DecimalField(
        min_value=Decimal("0"),
        max_digits=14,
        decimal_places=6,
        help_text="Per unit of the resource (per minute, item or day), up to 6 decimal places.",
    )
    price_year = forms.IntegerField(
        min_value=2000,
        max_value=2100,
        required=False,
        help_text="The year whose prices the rate is in; default: the financial year.",
    )
    source = forms.CharField(
        max_length=300, help_text="Where the figure comes from, e.g. NCC 2023/24 VB09Z, or a budget line."
    )
    includes = forms.CharField(
        max_length=300,
        required=False,
        help_text="What the rate already includes (e.g. overheads), so nothing is counted twice.",
    )
    reason = forms.CharField(max_length=300, required=False, help_text="Why it changes (kept in the audit trail).")

    def __init__(self, *args, fixed_year: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if fixed_year is not None:
            self.fields["financial_year"].choices = [(fixed_year, f"FY {financial_year_label(fixed_year)}")]
            self.fields["financial_year"].initial = fixed_year
        else:
            self.fields["financial_year"].initial = financial_year_of(timezone.localdate())


class CapacityCostRateForm(forms.Form):
    capacity_cost = forms.DecimalField(
        min_value=Decimal("0"),
        max_digits=14,
        decimal_places=2,
        label="Cost of capacity supplied",
        help_text="A year's cost of the resource: pay and on-costs for staff; depreciation, maintenance and its share of overheads for a room.",
    )
    theoretical_minutes = forms.DecimalField(
        min_value=Decimal("1"),
        max_digits=12,
        decimal_places=2,
        label="Theoretical capacity (minutes a year)",
        help_text="e.g. 37.5 h x 60 x 46 working weeks = 103,500 minutes.",
    )
    practical_factor = forms.DecimalField(
        min_value=Decimal("0.01"),
        max_value=Decimal("1"),
        max_digits=4,
        decimal_places=3,
        initial=DEFAULT_PRACTICAL_FACTOR,
        help_text="Share of theoretical time available for patient work (typically 0.80 to 0.85). Never use actual volume.",
    )
    resource = forms.ModelChoiceField(
        queryset=Resource.objects.filter(
            kind__in=[Resource.Kind.STAFF, Resource.Kind.ROOM, Resource.Kind.EQUIPMENT]
        ).order_by("name"),
        required=False,
        help_text="To save the result as this resource's per-minute rate.",
    )
    financial_year = _fy_field(required=False)
    source = forms.CharField(max_length=300, required=False, help_text="e.g. Theatres budget 2025/26, line 4")
    includes = forms.CharField(max_length=300, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["financial_year"].initial = financial_year_of(timezone.localdate())
        self.fields["resource"].label_from_instance = lambda r: f"{r.name} ({r.code})"

    def clean(self):
        data = super().clean()
        if self.data.get("action") == "save":
            if not data.get("resource"):
                self.add_error("resource", "Choose the resource to save the rate to.")
            elif data["resource"].unit != Resource.Unit.MINUTE:
                self.add_error(
                    "resource", "A capacity cost rate is per minute; this resource is costed per item or day."
                )
            if not data.get("source"):
                self.add_error("source", "Say where the capacity cost comes from.")
            if not data.get("financial_year"):
                self.add_error("financial_year", "Choose the financial year the rate is for.")
        return data


class RateImportForm(forms.Form):
    CSV, NCC = "csv", "ncc"
    format = forms.ChoiceField(
        choices=[(CSV, "CommonPath rates CSV"), (NCC, "NHS National Cost Collection schedule (CSV)")],
        widget=forms.RadioSelect,
        initial=CSV,
    )
    file = forms.FileField(help_text="UTF-8 CSV with a header row (a byte-order mark is fine). Up to 20 MB.")
    financial_year = forms.IntegerField(
        min_value=2000,
        max_value=2100,
        required=False,
        help_text="NCC only: the financial year the schedule's unit costs apply to (2023 for 2023/24).",
    )
    price_year = forms.IntegerField(
        min_value=2000, max_value=2100, required=False, help_text="NCC only; default: the financial year."
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > 20_000_000:
            raise forms.ValidationError("The file is larger than 20 MB.")
        return upload

    def clean(self):
        data = super().clean()
        if data.get("format") == self.NCC and not data.get("financial_year"):
            self.add_error(
                "financial_year", "Say which financial year the schedule is for (e.g. 2023 for NCC 2023/24)."
            )
        return data


class BudgetForm(forms.Form):
    pathway = forms.ModelChoiceField(queryset=Pathway.objects.order_by("code"))
    financial_year = _fy_field()
    episodes = forms.IntegerField(
        min_value=0, max_value=1_000_000, help_text="Budgeted number of episodes in the year."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pathway"].label_from_instance = lambda p: f"{p.code} - {p.name}"
        self.fields["financial_year"].initial = financial_year_of(timezone.localdate())
