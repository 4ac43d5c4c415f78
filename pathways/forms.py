"""Forms for authoring. They collect and type the input; rules live in ``services.py``,
whose ``ValidationError``s are put back next to the matching field by the views."""

from decimal import Decimal

from django import forms

from accounts.models import OrgUnit
from accounts.privacy import validate_no_patient_identifiers

from .models import PathwayVersion, Resource, Stage, Step, code_validator

MINUTES_HELP = "Minutes after the anchor (60 = 1 h, 1440 = 1 day, 2160 = 36 h). Leave empty for no limit."


def _clean_code(value: str) -> str:
    """Codes are capitals; accept lower case as typed and check the upper-cased code."""
    code = value.strip().upper()
    if code:
        code_validator(code)
    return code


class PathwayForm(forms.Form):
    code = forms.CharField(
        max_length=40,
        help_text="A stable code used by hospital systems and reports, e.g. HIP-FRACTURE. It cannot be changed later.",
    )
    name = forms.CharField(max_length=200)
    specialty = forms.CharField(max_length=100, required=False)
    owner_unit = forms.ModelChoiceField(queryset=OrgUnit.objects.none(), label="Owning unit")
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        help_text="What the pathway is for and the guidance it follows (cite your sources).",
    )

    def __init__(self, *args, units=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner_unit"].queryset = units if units is not None else OrgUnit.objects.none()

    def clean_code(self):
        return _clean_code(self.cleaned_data["code"])


class PathwayEditForm(forms.Form):
    name = forms.CharField(max_length=200)
    specialty = forms.CharField(max_length=100, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), required=False)


class StageForm(forms.Form):
    name = forms.CharField(max_length=120, label="Stage name", help_text='e.g. "Admission", "Day 1", "Discharge"')


class StepForm(forms.Form):
    code = forms.CharField(max_length=40, help_text="Stable within the pathway, e.g. SURGERY")
    name = forms.CharField(max_length=200)
    # Not required: a post without it (a form opened before the field existed) leaves the stage alone.
    stage = forms.ModelChoiceField(
        queryset=Stage.objects.none(), required=False, empty_label=None, help_text="Move the step to another stage."
    )
    step_type = forms.ChoiceField(choices=Step.Type.choices, label="Type", initial=Step.Type.OTHER)
    mandatory = forms.BooleanField(required=False, initial=True)
    criticality = forms.TypedChoiceField(
        choices=[(i, str(i)) for i in range(1, 6)],
        coerce=int,
        initial=1,
        help_text="1 routine to 5 critical: omissions of critical steps need a lead's review.",
    )
    anchor = forms.ModelChoiceField(
        queryset=Step.objects.none(), required=False, label="Timed from", empty_label="the episode start"
    )
    window_min_minutes = forms.IntegerField(required=False, label="Earliest (minutes)", help_text=MINUTES_HELP)
    window_max_minutes = forms.IntegerField(required=False, label="Latest (minutes)", help_text=MINUTES_HELP)
    must_follow = forms.ModelMultipleChoiceField(
        queryset=Step.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Steps that must be done before this one.",
    )
    per_day = forms.BooleanField(required=False, label="Per day (repeats each day of the stay)")
    expected_count = forms.DecimalField(
        min_value=Decimal("0"),
        max_digits=8,
        decimal_places=3,
        initial=Decimal("1"),
        help_text="How many times an episode uses this step: 1; expected days for a per-day step; a probability for a conditional step.",
    )
    evidence = forms.CharField(
        max_length=300, required=False, help_text="Guideline reference, e.g. NICE QS16 statement 4"
    )
    guidance = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args, version: PathwayVersion, step: Step | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        others = Step.objects.filter(version=version).order_by("code")
        if step is not None:
            others = others.exclude(pk=step.pk)
        if step is None:
            del self.fields["stage"]  # a new step goes in the stage whose "Add a step" was used
        else:
            self.fields["stage"].queryset = Stage.objects.filter(version=version).order_by("order", "id")
        self.fields["anchor"].queryset = others
        self.fields["must_follow"].queryset = others
        self.fields["anchor"].label_from_instance = lambda s: f"{s.code} - {s.name}"
        self.fields["must_follow"].label_from_instance = lambda s: f"{s.code} - {s.name}"

    def clean_code(self):
        return _clean_code(self.cleaned_data["code"])

    def service_fields(self) -> dict:
        data = dict(self.cleaned_data)
        data.pop("must_follow", None)
        if data.get("stage", "") is None:
            del data["stage"]
        return data

    @classmethod
    def initial_for(cls, step: Step) -> dict:
        initial = {
            name: getattr(step, name) for name in cls.base_fields if name not in ("stage", "anchor", "must_follow")
        }
        initial["stage"] = step.stage_id
        initial["anchor"] = step.anchor_id
        initial["must_follow"] = [s.pk for s in step.must_follow.all()]
        return initial


class PlannedResourceForm(forms.Form):
    resource = forms.ModelChoiceField(queryset=Resource.objects.order_by("name"))
    quantity = forms.DecimalField(
        min_value=Decimal("0"),
        max_digits=12,
        decimal_places=3,
        help_text="In the resource's unit (minutes, items or days), for one occurrence of the step.",
    )
    headcount = forms.IntegerField(min_value=1, max_value=50, initial=1, help_text="e.g. 2 for two theatre nurses")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resource"].label_from_instance = lambda r: f"{r.name} ({r.code}, per {r.get_unit_display()})"


class PublishForm(forms.Form):
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        label="Change note",
        validators=[validate_no_patient_identifiers],
        help_text="What changed and why. Everyone who follows the pathway sees it.",
    )
    effective_from = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Leave empty for today. Until this date, new episodes follow the version in force now; "
        "episodes that already started keep their version.",
    )


class RetireForm(forms.Form):
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Why is it being retired?",
        validators=[validate_no_patient_identifiers],
        help_text="Shown in the history.",
    )


class DraftForm(forms.Form):
    note = forms.CharField(
        required=False,
        max_length=500,
        label="What this draft is for",
        validators=[validate_no_patient_identifiers],
        help_text='Optional; shown in the pathway\'s history, e.g. "Update to the 2025 NICE guidance".',
    )


class ImportForm(forms.Form):
    file = forms.FileField(help_text="A JSON document exported from CommonPath (format commonpath.pathway-version/1).")
    code = forms.CharField(
        max_length=40,
        required=False,
        help_text="Leave empty to keep the document's code (it must not exist here yet).",
    )
    owner_unit = forms.ModelChoiceField(queryset=OrgUnit.objects.none(), label="Owning unit")

    def __init__(self, *args, units=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner_unit"].queryset = units if units is not None else OrgUnit.objects.none()

    def clean_code(self):
        return _clean_code(self.cleaned_data["code"])

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > 2_000_000:
            raise forms.ValidationError("The file is larger than 2 MB; a pathway document is far smaller.")
        return upload
