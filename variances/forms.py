"""Forms for the point of care: few choices, sensible defaults, errors by the field.

Forms only collect and check input; the services in ``services.py`` do the writing.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, OrgUnit, User
from accounts.permissions import EPISODE_ROLES, units_for
from accounts.privacy import validate_no_patient_identifiers
from pathways.models import Pathway, PathwayVersion, Resource, Step

from . import services
from .models import Episode, EventQuantity, ReasonCode, Variance, currency_symbol, validate_patient_ref
from .selectors import reason_groups

Role = Membership.Role
DATETIME_FORMAT = "%Y-%m-%dT%H:%M"

DISCHARGE_DESTINATIONS = [("", "Choose…"), *Episode.DischargeDestination.choices]
YES_NO_UNKNOWN = [("", "Not known yet"), ("yes", "Yes"), ("no", "No")]
YES_NO = [("yes", "Yes"), ("no", "No")]
# The valence most departures of a type have; the clinician changes it in one tap.
DEFAULT_VALENCE = {
    Variance.Type.OMISSION: Variance.Valence.NEGATIVE,
    Variance.Type.DELAY: Variance.Valence.NEGATIVE,
    Variance.Type.SEQUENCE: Variance.Valence.NEGATIVE,
}


def _when(label: str, *, required: bool = True, help_text: str = "") -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=required,
        help_text=help_text,
        input_formats=[DATETIME_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_FORMAT),
    )


def now_local() -> str:
    return timezone.localtime().strftime(DATETIME_FORMAT)


def _yes_no(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


def check_with_service(form: forms.Form, check, *, fields: dict[str, str] | None = None, **values) -> None:
    """Run a service's own checks (``services.*_check``) beside the form's field checks.

    So every problem shows in one round, rather than the service's only after the fields pass.
    A field that already has an error of its own keeps just that one; ``fields`` maps a service's
    field name onto the form's where they differ. Values a field could not clean are None here,
    and the checks pass over them.
    """
    try:
        check(**values)
    except ValidationError as exc:
        for name, errors in exc.message_dict.items():
            name = (fields or {}).get(name, name)
            if name not in form.errors:  # a field's own error says it already
                form.add_error(name if name in form.fields else None, errors)


class EpisodeStartForm(forms.Form):
    pathway = forms.ModelChoiceField(queryset=Pathway.objects.none(), empty_label="Choose a pathway…")
    patient_ref = forms.CharField(
        label="Patient reference",
        max_length=40,
        validators=[validate_patient_ref],
        help_text="The pseudonymous reference only (e.g. PT-7F3K2Q): never a name, email or NHS number.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}),
    )
    org_unit = forms.ModelChoiceField(label="Unit", queryset=OrgUnit.objects.none(), empty_label=None)
    responsible_clinician = forms.ModelChoiceField(
        label="Responsible clinician", queryset=User.objects.none(), empty_label=None
    )
    started_at = _when("Started")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pathway"].queryset = Pathway.objects.filter(
            versions__status=PathwayVersion.Status.PUBLISHED
        ).distinct()
        units = units_for(user, *EPISODE_ROLES)
        self.fields["org_unit"].queryset = units
        self.fields["responsible_clinician"].queryset = (
            User.objects.filter(
                kind=User.Kind.PERSON,
                memberships__role__in=[Role.CLINICIAN, Role.CLINICAL_LEAD],
                memberships__org_unit__in=units,
            )
            .distinct()
            .order_by("display_name", "username")
        )
        self.initial.setdefault("started_at", now_local())
        self.initial.setdefault("responsible_clinician", user.pk)
        own = [m.org_unit_id for m in user.memberships.all() if m.role in EPISODE_ROLES]
        if own:
            self.initial.setdefault("org_unit", own[0])

    def clean_patient_ref(self):
        return self.cleaned_data["patient_ref"].strip()


class EpisodeCloseForm(forms.Form):
    ended_at = _when("Discharged")
    discharge_destination = forms.ChoiceField(choices=DISCHARGE_DESTINATIONS, required=False)
    complication = forms.ChoiceField(
        label="Complication during the episode?", choices=YES_NO_UNKNOWN, required=False, widget=forms.RadioSelect
    )
    readmitted_30d = forms.ChoiceField(
        label="Readmitted within 30 days?", choices=YES_NO_UNKNOWN, required=False, widget=forms.RadioSelect
    )

    def __init__(self, *args, episode, **kwargs):
        super().__init__(*args, **kwargs)
        self.episode = episode
        self.initial.setdefault("ended_at", now_local())

    def clean(self):
        data = super().clean()
        check_with_service(self, services.episode_end_check, episode=self.episode, ended_at=data.get("ended_at"))
        return data

    def outcome(self, name: str) -> bool | None:
        return _yes_no(self.cleaned_data.get(name, ""))


def _yes_no_choice(value: bool | None) -> str:
    return {True: "yes", False: "no"}.get(value, "")


class EpisodeOutcomesForm(forms.Form):
    """The outcomes known only after discharge, recorded or corrected on a completed or exited episode."""

    readmitted_30d = forms.ChoiceField(
        label="Readmitted within 30 days?", choices=YES_NO_UNKNOWN, required=False, widget=forms.RadioSelect
    )
    complication = forms.ChoiceField(
        label="Complication during the episode?", choices=YES_NO_UNKNOWN, required=False, widget=forms.RadioSelect
    )
    # The episode's version as the page showed it: a change made meanwhile is not overwritten unseen.
    expected_revision = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args, episode: Episode, **kwargs):
        super().__init__(*args, **kwargs)
        for name in services.OUTCOME_FIELDS:
            self.initial.setdefault(name, _yes_no_choice(getattr(episode, name)))
        self.initial.setdefault("expected_revision", episode.row_version)

    def outcome(self, name: str) -> bool | None:
        return _yes_no(self.cleaned_data.get(name, ""))


class ReasonField(forms.ChoiceField):
    """A reason code chosen from grouped options ("most used for this step" first)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reasons: dict[str, ReasonCode] = {}

    def set_reasons(self, reasons: list[ReasonCode], *, step: Step | None = None) -> None:
        """Each reason once; those most used for ``step`` first, when the form knows the step."""
        self.reasons = {str(r.pk): r for r in reasons}
        choices = [("", "Choose a reason…")]
        ranked_label = "Most used for this step" if step is not None else ""
        for label, group in reason_groups(reasons, ranked_label=ranked_label):
            ranked = bool(ranked_label) and label == ranked_label
            choices.append((label, [(str(r.pk), _reason_label(r, uses=ranked)) for r in group]))
        self.choices = choices

    def clean(self, value):
        value = super().clean(value)
        return self.reasons.get(value) if value else None


def _reason_label(reason: ReasonCode, *, uses: bool) -> str:
    """``uses``: say how often it was used, in the group that says what for."""
    count = getattr(reason, "uses", 0)
    label = reason.display
    if reason.discouraged:
        label += " (discouraged: say more below)"
    if uses and count:
        label += f" · used {count}×"
    return label


class EpisodeExitForm(forms.Form):
    ended_at = _when("Left the pathway at")
    reason = forms.CharField(
        label="Why did the patient leave the pathway?",
        widget=forms.Textarea(attrs={"rows": 3}),
        validators=[validate_no_patient_identifiers],
        help_text="Required. A clinical lead reviews every exit.",
        error_messages={"required": "Say why the patient left the pathway."},
    )
    reason_code = ReasonField(label="Coded reason", required=False)

    def __init__(self, *args, episode, reasons: list[ReasonCode], **kwargs):
        super().__init__(*args, **kwargs)
        self.episode = episode
        self.initial.setdefault("ended_at", now_local())
        self.fields["reason_code"].set_reasons(reasons)
        self.fields["reason_code"].help_text = "Optional now; without it the exit waits in your inbox for a code."

    def clean(self):
        data = super().clean()
        check_with_service(
            self,
            services.episode_exit_check,
            episode=self.episode,
            ended_at=data.get("ended_at"),
            reason=data.get("reason"),
            reason_code=data.get("reason_code"),
        )
        return data


class ResourceField(forms.ChoiceField):
    """A resource chosen from a list read once for all the rows of a form (not once per row)."""

    def set_resources(self, resources: list[Resource]) -> None:
        self.resources = {str(r.pk): r for r in resources}
        self.choices = [("", "Choose a resource…")] + [
            (str(r.pk), f"{r.name} (per {r.get_unit_display()})") for r in resources
        ]

    def clean(self, value):
        value = super().clean(value)
        return self.resources.get(value) if value else None


class EventQuantityForm(forms.Form):
    """One actual quantity of an event: what differed from the plan, and its price if that differed too."""

    resource = ResourceField(label="Resource", required=False)
    quantity = forms.DecimalField(label="Quantity used", required=False)
    headcount = forms.IntegerField(label="Headcount", required=False)
    unit_cost = forms.DecimalField(label="Actual unit price", required=False)

    def __init__(self, *args, resources: list[Resource], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resource"].set_resources(resources)
        self.fields["unit_cost"].label = f"Actual unit price ({currency_symbol().strip()})"
        self.fields["unit_cost"].widget.attrs["placeholder"] = "standard rate"
        self.fields["quantity"].widget.attrs["inputmode"] = "decimal"
        self.fields["unit_cost"].widget.attrs["inputmode"] = "decimal"

    def has_changed(self) -> bool:
        # A row counts once a figure is typed in it: a resource suggested from the plan, left without
        # figures, records nothing (the resource was used as planned).
        return any(self[name].data not in (None, "") for name in ("quantity", "headcount", "unit_cost"))

    def clean(self):
        data = super().clean()
        if not self.has_changed():
            return data
        if data.get("resource") is None and "resource" not in self.errors:
            self.add_error("resource", "Choose the resource these figures are for.")
        if data.get("quantity") is None and "quantity" not in self.errors:
            self.add_error("quantity", "Give the quantity used, in the resource's unit.")
        check_with_service(
            self,
            services.event_quantity_check,
            resource=data.get("resource"),
            quantity=data.get("quantity"),
            headcount=data.get("headcount"),
            unit_cost=data.get("unit_cost"),
        )
        return data


class BaseEventQuantityFormSet(forms.BaseFormSet):
    """The quantity rows of an event: rows suggested from the step's plan, then a few blank ones.

    Every row may stay empty (none is an "initial" form that must validate): an event without
    quantities was done as planned.
    """

    def __init__(self, *args, planned=(), **kwargs):
        self.planned = {p.resource_id: p for p in planned}
        super().__init__(*args, initial=[{"resource": resource_id} for resource_id in self.planned], **kwargs)
        self.extra = max(len(self.planned) + BLANK_QUANTITY_ROWS, MIN_QUANTITY_ROWS)

    def initial_form_count(self) -> int:
        return 0

    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        planned = self.planned.get(form.initial.get("resource")) if form.initial else None
        if planned is not None:  # the plan, as a hint where the figure goes
            form.fields["quantity"].widget.attrs["placeholder"] = f"planned {planned.quantity.normalize():f}"
            form.fields["headcount"].widget.attrs["placeholder"] = f"planned {planned.headcount}"
        return form

    def clean(self):
        seen: dict[int, int] = {}
        for number, form in enumerate(self.forms, start=1):
            resource = form.cleaned_data.get("resource") if form.has_changed() else None
            if resource is None:
                continue
            if resource.pk in seen:
                form.add_error("resource", f"{resource.name} is in row {seen[resource.pk]} already: give each once.")
            else:
                seen[resource.pk] = number

    def entered(self, step: Step | None) -> list[dict]:
        """The rows typed in, as ``services.event_record`` takes its quantities.

        A headcount left blank is the step's planned headcount for the resource (two theatre
        nurses), else one: "120 minutes of theatre nurse" means the nurses the plan has.
        """
        planned = {p.resource_id: p.headcount for p in step.planned_resources.all()} if step else {}
        return [
            {
                "resource": form.cleaned_data["resource"],
                "quantity": form.cleaned_data["quantity"],
                "headcount": form.cleaned_data["headcount"] or planned.get(form.cleaned_data["resource"].pk, 1),
                "unit_cost": form.cleaned_data["unit_cost"],
            }
            for form in self.forms
            if form.has_changed() and form.cleaned_data
        ]

    def row_errors(self) -> list[tuple[str, str]]:
        """(field id, "Quantities, row 2, Quantity used: ...") for the error summary above the form."""
        found = []
        for number, form in enumerate(self.forms, start=1):
            for name, errors in form.errors.items():
                field = form[name] if name in form.fields else None
                for error in errors:
                    label = f"Quantities, row {number}" + (f", {field.label}" if field else "")
                    found.append((field.auto_id if field else "", f"{label}: {error}"))
        for error in self.non_form_errors():
            found.append(("", f"Quantities: {error}"))
        return found


QUANTITY_PREFIX = "q"
BLANK_QUANTITY_ROWS = 2
MIN_QUANTITY_ROWS = 4
EventQuantityFormSet = forms.formset_factory(
    EventQuantityForm, formset=BaseEventQuantityFormSet, extra=0, max_num=50, absolute_max=50
)


class EventForm(forms.Form):
    step = forms.ModelChoiceField(queryset=Step.objects.none(), required=False, empty_label="Not on the pathway")
    activity = forms.CharField(
        label="Activity not on the pathway",
        max_length=200,
        required=False,
        validators=[validate_no_patient_identifiers],
        help_text="Only when the step is 'Not on the pathway', e.g. 'Blood transfusion'.",
    )
    occurred_at = _when("When")
    performed_by = forms.CharField(
        label="Performed by (role or team)",
        max_length=150,
        required=False,
        validators=[validate_no_patient_identifiers],
    )

    def __init__(self, *args, episode, step: Step | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.episode = episode
        self.fields["step"].queryset = Step.objects.filter(version_id=episode.version_id)
        self.initial.setdefault("occurred_at", now_local())
        if step is not None:
            self.initial.setdefault("step", step.pk)
        # Choosing the step fetches its quantity rows, suggested from its plan (the page works without it).
        self.fields["step"].widget.attrs.update(
            {
                "hx-get": reverse("variances:event_record", args=[episode.pk]),
                "hx-trigger": "change",
                "hx-target": "#quantity-rows",
                "hx-swap": "outerHTML",
            }
        )
        # The actual quantities, where they differed from the plan: rows suggested from the chosen step's.
        planned = step.planned_resources.select_related("resource") if step is not None else ()
        # A post without the rows at all (a page from before they existed, a script) records no quantities.
        sent_rows = self.is_bound and f"{QUANTITY_PREFIX}-TOTAL_FORMS" in self.data
        self.rows = EventQuantityFormSet(
            self.data if sent_rows else None,
            prefix=QUANTITY_PREFIX,
            planned=planned,
            form_kwargs={"resources": list(resources_for(episode))},
        )

    def is_valid(self) -> bool:
        rows_valid = not self.rows.is_bound or self.rows.is_valid()  # both, so every problem shows in one round
        return super().is_valid() and rows_valid

    def quantities(self) -> list[dict]:
        return self.rows.entered(self.cleaned_data.get("step")) if self.rows.is_bound else []

    def clean(self):
        data = super().clean()
        check_with_service(
            self,
            services.event_record_check,
            # The select offers only this version's steps, so the one "step" problem the service can find
            # here is "neither a step nor an activity": it shows by the activity box, as it always has.
            fields={"step": "activity"},
            episode=self.episode,
            step=data.get("step"),
            activity=data.get("activity"),
            occurred_at=data.get("occurred_at"),
        )
        return data


def resource_field() -> forms.ModelChoiceField:
    field = forms.ModelChoiceField(
        label="Resource it concerns",
        queryset=Resource.objects.none(),
        required=False,
        empty_label="No particular resource",
        help_text="Only when the departure is about one resource of the step (a dearer implant, a different "
        "drug): its cost is then linked to that resource alone.",
    )
    field.label_from_instance = lambda resource: resource.name
    return field


def resources_for(episode) -> QuerySet[Resource]:
    """The resources the pathway version plans and those this episode's events used."""
    return (
        Resource.objects.filter(
            Q(planned_uses__step__version_id=episode.version_id)
            | Q(pk__in=EventQuantity.objects.filter(event__episode=episode).values("resource_id"))
        )
        .distinct()
        .order_by("name")
    )


def check_resource(form: forms.Form, episode, step, resource) -> None:
    """A record about a resource must name a step that plans or used it: otherwise it explains no cost."""
    if resource is None:
        return
    if step is None:
        form.add_error("resource", "Choose the step this resource belongs to as well.")
    elif not (
        step.planned_resources.filter(resource=resource).exists()
        or EventQuantity.objects.filter(event__episode=episode, event__step=step, resource=resource).exists()
    ):
        form.add_error("resource", f"{resource.name} is not planned on {step.name} and was not used there.")


class VarianceForm(forms.Form):
    """Record (or explain) a departure: reason, cause and valence, plus the rationale.

    Step and type are shown only when they are not already known (recording
    from the timeline or explaining a detected variance fixes them). The cause
    left blank takes the reason's usual cause.
    """

    step = forms.ModelChoiceField(queryset=Step.objects.none(), required=False, empty_label="No particular step")
    variance_type = forms.ChoiceField(
        label="What happened",
        choices=[c for c in Variance.Type.choices if c[0] != Variance.Type.EXIT],
        error_messages={"required": "Choose what happened."},
    )
    resource = resource_field()
    reason = ReasonField(label="Reason", error_messages={"required": "Choose a reason."})
    cause = forms.ChoiceField(
        label="Cause",
        choices=[("", "The reason's usual cause"), *Variance.Cause.choices],
        required=False,
        widget=forms.RadioSelect,
    )
    valence = forms.ChoiceField(
        label="For the patient this was",
        choices=Variance.Valence.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Say whether the departure was positive, negative or neutral for the patient."},
    )
    # Left blank (a client posting the form as it was before), it is what the service records by default.
    level = forms.ChoiceField(
        label="Level",
        choices=Variance.Level.choices,
        initial=Variance.Level.PROCESS,
        required=False,
        widget=forms.RadioSelect,
        help_text="Process: the care given departed from the plan. Outcome: the patient did not reach an "
        "expected result (for example, not walking by day 2).",
    )
    rationale = forms.CharField(
        label="Rationale",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        validators=[validate_no_patient_identifiers],
        help_text="Your clinical reasoning, in a sentence. Never the patient's name or NHS number.",
    )
    action_taken = forms.CharField(
        label="Action taken",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        validators=[validate_no_patient_identifiers],
    )
    occurred_at = _when("When")

    def __init__(self, *args, episode, reasons, step=None, variance_type=None, explaining=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.episode = episode
        self.explaining = explaining
        self.fields["step"].queryset = Step.objects.filter(version_id=episode.version_id)
        self.fields["resource"].queryset = resources_for(episode)
        self.fields["reason"].set_reasons(reasons, step=step)
        self.fixed_step = step
        self.fixed_type = variance_type
        if explaining:
            # A detected departure keeps what detection set: its step, type, time and (process) level.
            del self.fields["step"], self.fields["variance_type"], self.fields["resource"], self.fields["occurred_at"]
            del self.fields["level"]
        else:
            if step is not None:
                self.initial.setdefault("step", step.pk)
            # The select shows its first type when none is given: say so, so that
            # the valence below follows the type the clinician actually sees.
            first_type = self.fields["variance_type"].choices[0][0]
            self.initial.setdefault("variance_type", variance_type or first_type)
            variance_type = self.initial["variance_type"]
            # On an episode that has ended, what happened happened before its end, not now.
            ended = episode.ended_at
            self.initial.setdefault(
                "occurred_at", timezone.localtime(ended).strftime(DATETIME_FORMAT) if ended else now_local()
            )
        self.initial.setdefault("valence", DEFAULT_VALENCE.get(variance_type, Variance.Valence.NEUTRAL))

    def clean(self):
        data = super().clean()
        reason = data.get("reason")
        if reason and not data.get("cause"):
            data["cause"] = reason.default_cause or Variance.Cause.CLINICIAN
        if not self.explaining:
            data["level"] = data.get("level") or Variance.Level.PROCESS
            check_resource(self, self.episode, data.get("step"), data.get("resource"))
            # A step for a step's departure, not in the future: beside the field errors, in one round.
            check_with_service(
                self,
                services.variance_record_check,
                episode=self.episode,
                step=data.get("step"),
                variance_type=data.get("variance_type"),
                reason=data.get("reason"),
                occurred_at=data.get("occurred_at"),
            )
        return data


class AmendForm(forms.Form):
    variance_type = forms.ChoiceField(
        label="What happened", choices=[c for c in Variance.Type.choices if c[0] != Variance.Type.EXIT]
    )
    step = forms.ModelChoiceField(queryset=Step.objects.none(), required=False, empty_label="No particular step")
    resource = resource_field()
    reason = ReasonField(label="Reason")
    cause = forms.ChoiceField(label="Cause", choices=Variance.Cause.choices, widget=forms.RadioSelect)
    valence = forms.ChoiceField(
        label="For the patient this was", choices=Variance.Valence.choices, widget=forms.RadioSelect
    )
    level = forms.ChoiceField(label="Level", choices=Variance.Level.choices, widget=forms.RadioSelect)
    rationale = forms.CharField(
        label="Rationale",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        validators=[validate_no_patient_identifiers],
    )
    action_taken = forms.CharField(
        label="Action taken",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        validators=[validate_no_patient_identifiers],
    )
    occurred_at = _when("When")
    amend_reason = forms.CharField(
        label="Why are you changing it?",
        widget=forms.Textarea(attrs={"rows": 2}),
        validators=[validate_no_patient_identifiers],
        help_text="Required. Kept with this revision; every earlier revision stays readable.",
    )
    expected_revision = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args, variance: Variance, reasons, **kwargs):
        super().__init__(*args, **kwargs)
        self.variance = variance
        self.fields["step"].queryset = Step.objects.filter(version_id=variance.episode.version_id)
        self.fields["resource"].queryset = resources_for(variance.episode)
        self.fields["reason"].set_reasons(reasons, step=variance.step)
        if variance.variance_type == Variance.Type.EXIT:
            self.fields["variance_type"].choices = Variance.Type.choices
        for name in ("variance_type", "cause", "valence", "level", "rationale", "action_taken"):
            self.initial.setdefault(name, getattr(variance, name))
        self.initial.setdefault("step", variance.step_id)
        self.initial.setdefault("resource", variance.resource_id)
        self.initial.setdefault("reason", str(variance.reason_id or ""))
        self.initial.setdefault("occurred_at", timezone.localtime(variance.occurred_at).strftime(DATETIME_FORMAT))
        self.initial.setdefault("expected_revision", variance.revision)

    def clean_occurred_at(self):
        value = self.cleaned_data["occurred_at"]
        # The field shows the time to the minute. Left as shown, the stored time stands (seconds and all):
        # amending something else neither truncates it nor has it checked again as if it were new.
        if value == self.variance.occurred_at.replace(second=0, microsecond=0):
            return self.variance.occurred_at
        return value

    def clean(self):
        data = super().clean()
        check_resource(self, self.variance.episode, data.get("step"), data.get("resource"))
        return data

    def changes(self) -> dict:
        data = self.cleaned_data
        return {
            name: data.get(name)
            for name in (
                "variance_type",
                "step",
                "resource",
                "reason",
                "cause",
                "valence",
                "level",
                "rationale",
                "action_taken",
                "occurred_at",
            )
        }


class WithdrawForm(forms.Form):
    reason = forms.CharField(
        label="Why withdraw it?",
        widget=forms.Textarea(attrs={"rows": 2}),
        validators=[validate_no_patient_identifiers],
        help_text="The variance and its history stay readable, marked withdrawn.",
    )


class ReviewForm(forms.Form):
    justified = forms.ChoiceField(label="Justified?", choices=YES_NO, widget=forms.RadioSelect)
    avoidable = forms.ChoiceField(label="Avoidable?", choices=YES_NO, widget=forms.RadioSelect)
    comment = forms.CharField(
        label="Comment",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        validators=[validate_no_patient_identifiers],
        help_text="Required when the departure was not justified.",
    )

    def clean(self):
        data = super().clean()
        if data.get("justified") == "no" and not (data.get("comment") or "").strip():
            self.add_error("comment", "Say why the departure was not justified, so the team can learn from it.")
        return data

    def verdict(self) -> dict:
        return {
            "justified": self.cleaned_data["justified"] == "yes",
            "avoidable": self.cleaned_data["avoidable"] == "yes",
            "comment": self.cleaned_data.get("comment", ""),
        }
