"""API: episodes, their events and variances, variance history, and the reason catalogue.

Every write goes through ``variances/services.py``, the same services the
browser uses. Episodes and variances are patient-level records: only
clinicians, clinical leads and admins reach these endpoints, and only for the
org units they hold a role in (``episode_scope``); anything outside answers 404.
Every read of an episode is audited.

The episode detail shows costs that ``costing`` computes; ``config/api_urls.py``
hands the views a ``cost_summary`` function for that (apps import one way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Prefetch, Q
from django.template.defaultfilters import pluralize
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema, extend_schema_field
from rest_framework import exceptions, generics, serializers, status
from rest_framework.response import Response

from accounts.api_support import (
    MAX_ID,
    ApiMixin,
    BooleanFilter,
    CodeFilter,
    Conflict,
    IntegerFilter,
    KnownCodeFilter,
    MoneyField,
    PreconditionFailed,
    SinceFilter,
    StrictDateTimeField,
    StrictFilterSet,
    StrictSerializer,
    UnitFilter,
    check_if_match,
    django_validation_detail,
    etag,
    idempotent,
    object_in_scope_or_404,
)
from accounts.audit import audit_record
from accounts.models import Membership, OrgUnit, User
from accounts.permissions import ALL_ROLES, EPISODE_ROLES, can_see_individuals, unit_ids_for
from accounts.privacy import validate_no_patient_identifiers
from pathways.models import Pathway, PathwayVersion, Resource, Step

from . import services
from .models import Episode, EventQuantity, ReasonCode, StepEvent, Variance, VarianceRevision, validate_patient_ref
from .selectors import can_change_variance

MAX_BATCH = 1000


# --- scope, versions, audit --------------------------------------------------------------------


def episode_scope(user):
    return Episode.objects.for_units(unit_ids_for(user, *EPISODE_ROLES))


def variance_scope(user):
    return Variance.objects.for_units(unit_ids_for(user, *EPISODE_ROLES))


def episode_etag(episode: Episode) -> str:
    return etag(f"episode-{episode.pk}-{episode.row_version}")


def variance_etag(variance: Variance) -> str:
    return etag(f"variance-{variance.pk}-r{variance.revision}")


def audit_episode_read(episode: Episode, *, via: str) -> None:
    audit_record(action="episode.read", obj=episode, episode_ref=episode.patient_ref, detail={"via": via})


def audit_list_read(action: str, rows, *, object_type: str) -> None:
    """One event per page read: which records the caller received."""
    audit_record(action=action, object_type=object_type, detail={"ids": [row.pk for row in rows]})


def _service_errors(exc: DjangoValidationError, renames: Mapping[str, str]) -> exceptions.ValidationError:
    """A service's ValidationError with its model field names turned into the API's names."""
    detail = django_validation_detail(exc)
    return exceptions.ValidationError({renames.get(k, k): v for k, v in detail.items()})


VARIANCE_RENAMES = {"variance_type": "type", "amend_reason": "amendment_reason", "__all__": "non_field_errors"}
EPISODE_RENAMES = {"pathway_version": "version", "__all__": "non_field_errors"}


# --- output serializers -------------------------------------------------------------------------


class QuantitySerializer(serializers.ModelSerializer):
    resource = serializers.CharField(source="resource.code")
    unit_cost = MoneyField(allow_null=True, help_text="Only where the actual price differed from the standard rate.")
    # Declared integers (here and below): model-derived bounds differ between databases.
    headcount = serializers.IntegerField(read_only=True)

    class Meta:
        model = EventQuantity
        fields = ["resource", "quantity", "headcount", "unit_cost"]


class EventSerializer(serializers.ModelSerializer):
    step = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    recorded_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    quantities = QuantitySerializer(many=True, read_only=True)

    class Meta:
        model = StepEvent
        fields = [
            "id",
            "episode",
            "step",
            "activity",
            "occurred_at",
            "recorded_at",
            "recorded_by",
            "performed_by",
            "source",
            "external_id",
            "quantities",
        ]


class RecordedEventSerializer(EventSerializer):
    created = serializers.BooleanField(
        help_text="False when an event with this external_id was already stored (nothing changed)."
    )

    class Meta(EventSerializer.Meta):
        fields = [*EventSerializer.Meta.fields, "created"]


# Free text and people: only for roles that may see individuals.
PRIVATE_VARIANCE_FIELDS = ("rationale", "action_taken", "recorded_by", "reviewed_by", "review_comment")


class VarianceSerializer(serializers.ModelSerializer):
    pathway = serializers.CharField(source="episode.version.pathway.code")
    org_unit = serializers.CharField(source="episode.org_unit.code")
    step = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    resource = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    type = serializers.CharField(source="variance_type")
    reason = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    reason_display = serializers.CharField(source="reason.display", allow_null=True, default=None)
    recorded_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    reviewed_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    detected = serializers.SerializerMethodField(help_text="True when the detector raised it (not a person).")
    revision = serializers.IntegerField(read_only=True, help_text="Goes up with every change; the ETag follows it.")

    class Meta:
        model = Variance
        fields = [
            "id",
            "episode",
            "pathway",
            "org_unit",
            "step",
            "resource",
            "type",
            "cause",
            "reason",
            "reason_display",
            "valence",
            "level",
            "justified",
            "avoidable",
            "rationale",
            "action_taken",
            "occurred_at",
            "recorded_at",
            "recorded_by",
            "documented_at",
            "status",
            "detected",
            "review_required",
            "reviewed_by",
            "reviewed_at",
            "review_comment",
            "withdrawn_reason",
            "revision",
        ]

    def get_detected(self, variance) -> bool:
        return variance.detection_id is not None

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not can_see_individuals(request.user):
            # Belt and braces: these endpoints are for episode roles only, but a
            # manager or finance user must never receive names or free text.
            for name in PRIVATE_VARIANCE_FIELDS:
                data[name] = None
        return data


class EpisodeSummarySerializer(serializers.ModelSerializer):
    pathway = serializers.CharField(source="version.pathway.code")
    version = serializers.IntegerField(source="version.number")
    org_unit = serializers.CharField(source="org_unit.code")
    responsible_clinician = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Episode
        fields = [
            "id",
            "patient_ref",
            "pathway",
            "version",
            "org_unit",
            "responsible_clinician",
            "started_at",
            "ended_at",
            "status",
            "updated_at",
        ]


class EpisodeCostLineSerializer(serializers.Serializer):
    """One non-zero part of one cost line: where the episode's variance comes from, and what explains it."""

    step = serializers.CharField(allow_null=True, help_text="The step's code; null for an activity off the pathway.")
    activity = serializers.CharField(help_text="The step's name, or the activity off the pathway.")
    resource = serializers.CharField(help_text="The resource's code.")
    component = serializers.ChoiceField(
        choices=["price", "usage", "los"], help_text="Price/rate, usage/efficiency or length of stay."
    )
    nature = serializers.ChoiceField(
        choices=["cash", "capacity"], help_text="Cash, or capacity consumed (salaried staff time)."
    )
    amount = MoneyField(help_text="Positive is adverse.")
    direction = serializers.ChoiceField(choices=[("U", "adverse"), ("F", "favourable")], help_text="U or F.")
    variance = serializers.IntegerField(
        allow_null=True, help_text="The id of the variance record that explains this line, if any."
    )
    cause = serializers.CharField(
        help_text=(
            "The explaining variance's cause; 'repeat' for what a step done more often than planned used when "
            "no record explains it; 'unexplained' when no record or no cause explains it."
        ),
    )
    repeated = serializers.BooleanField(
        help_text=(
            "The step was done more often than planned (its expected count, whole, at least once) and used more "
            "than planned. A repeat is not a departure, so the line is explained only if a variance was recorded "
            "on the step."
        )
    )


class EpisodeCostsSerializer(serializers.Serializer):
    currency = serializers.CharField()
    expected = MoneyField(help_text="E: what the pathway expects an episode to cost.")
    actual = MoneyField(help_text="A: what this episode cost (to date, while active).")
    variance = MoneyField(help_text="A - E; positive is adverse.")
    direction = serializers.CharField(help_text="U (adverse), F (favourable) or empty.")
    price_variance = MoneyField()
    usage_variance = MoneyField()
    los_variance = MoneyField()
    capacity_variance = MoneyField(help_text="Salaried staff time: capacity consumed, not cash.")
    variance_by_cause = serializers.DictField(
        child=serializers.CharField(),
        help_text="Variance by cause: patient, clinician, system, community, repeat (repeated steps no record "
        "explains) and unexplained (no record, or no cause yet).",
    )
    missing_rates = serializers.IntegerField(help_text="Resources with no rate in force (costed at zero).")
    final = serializers.BooleanField(help_text="False while the episode is active: the costs will still change.")
    lines = EpisodeCostLineSerializer(
        many=True, help_text="Every non-zero variance part: adverse ones first, then favourable, each largest first."
    )


class EpisodeDetailSerializer(EpisodeSummarySerializer):
    length_of_stay_days = serializers.IntegerField(read_only=True, allow_null=True)
    events = EventSerializer(many=True, read_only=True)
    variances = VarianceSerializer(many=True, read_only=True)
    costs = serializers.SerializerMethodField()

    class Meta(EpisodeSummarySerializer.Meta):
        fields = [
            *EpisodeSummarySerializer.Meta.fields,
            "exit_reason",
            "discharge_destination",
            "readmitted_30d",
            "complication",
            "length_of_stay_days",
            "created_at",
            "events",
            "variances",
            "costs",
        ]

    @extend_schema_field(EpisodeCostsSerializer(allow_null=True))
    def get_costs(self, episode):
        cost_summary = self.context.get("cost_summary")
        return EpisodeCostsSerializer(cost_summary(episode)).data if cost_summary else None


class RevisionSerializer(serializers.ModelSerializer):
    changed_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    state = serializers.SerializerMethodField(help_text="The variance as it was after this change.")
    number = serializers.IntegerField(read_only=True)

    class Meta:
        model = VarianceRevision
        fields = ["number", "changed_at", "changed_by", "reason", "state"]

    @extend_schema_field(serializers.DictField())
    def get_state(self, revision) -> dict:
        codes = self.context["codes"]
        snap = revision.snapshot
        state = {
            "type": snap.get("variance_type"),
            "step": codes["step"].get(snap.get("step_id")),
            "resource": codes["resource"].get(snap.get("resource_id")),
            "reason": codes["reason"].get(snap.get("reason_id")),
        }
        for name in (
            "cause",
            "valence",
            "level",
            "justified",
            "avoidable",
            "rationale",
            "action_taken",
            "occurred_at",
            "status",
            "review_comment",
            "withdrawn_reason",
            "revision",
        ):
            state[name] = snap.get(name)
        return state


class ReasonCodeSerializer(serializers.ModelSerializer):
    pathway = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)

    class Meta:
        model = ReasonCode
        fields = ["code", "display", "category", "system", "pathway", "default_cause", "discouraged", "retired"]


# --- input serializers --------------------------------------------------------------------------


class EpisodeCreateSerializer(StrictSerializer):
    pathway = serializers.SlugRelatedField(
        slug_field="code",
        queryset=Pathway.objects.all(),
        error_messages={"does_not_exist": "There is no pathway with the code {value}."},
    )
    version = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**31 - 1,
        help_text="A published or retired version number; default the published one.",
    )
    patient_ref = serializers.CharField(
        max_length=40,
        validators=[validate_patient_ref],
        help_text="Pseudonymous reference only (e.g. PT-7F3K2Q): no names or NHS numbers.",
    )
    org_unit = serializers.SlugRelatedField(
        slug_field="code",
        queryset=OrgUnit.objects.all(),
        error_messages={"does_not_exist": "There is no org unit with the code {value}."},
    )
    # A username, checked against the unit's clinicians in validate(): one answer for a name that
    # does not exist and one that is no clinician here, so that callers cannot list other units' staff.
    responsible_clinician = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=150,
        help_text="Username of a clinician or clinical lead of the unit (or of a unit above it).",
    )
    started_at = StrictDateTimeField()

    def validate(self, attrs):
        user = self.context["request"].user
        unit = attrs["org_unit"]
        if unit.pk not in unit_ids_for(user, *EPISODE_ROLES):
            raise serializers.ValidationError({"org_unit": "You cannot record episodes in this unit."})
        number = attrs.pop("version", None)
        if number is not None:
            version = PathwayVersion.objects.filter(pathway=attrs["pathway"], number=number).first()
            if version is None:
                raise serializers.ValidationError({"version": f"{attrs['pathway'].code} has no version {number}."})
            attrs["pathway_version"] = version
        username = attrs.get("responsible_clinician")
        if username is not None:
            clinician = User.objects.filter(username=username, is_active=True, kind=User.Kind.PERSON).first()
            holds = Membership.objects.filter(
                user=clinician, role__in=[Membership.Role.CLINICIAN, Membership.Role.CLINICAL_LEAD]
            ).select_related("org_unit")
            if clinician is None or not any(unit.is_within(m.org_unit) for m in holds):
                raise serializers.ValidationError(
                    {"responsible_clinician": f"{username} is not a clinician in {unit.code}."}
                )
            attrs["responsible_clinician"] = clinician
        return attrs


class EpisodeCloseSerializer(StrictSerializer):
    ended_at = StrictDateTimeField()
    discharge_destination = serializers.ChoiceField(
        choices=Episode.DischargeDestination.choices,
        required=False,
        allow_blank=True,
        help_text="A code, as the browser offers them.",
        error_messages={
            "invalid_choice": '"{input}" is not a discharge destination code. Give one of: '
            + ", ".join(Episode.DischargeDestination.values)
            + "."
        },
    )
    readmitted_30d = serializers.BooleanField(required=False, allow_null=True)
    complication = serializers.BooleanField(required=False, allow_null=True)
    exit_reason = serializers.CharField(
        max_length=2000,
        required=False,
        allow_blank=False,
        validators=[validate_no_patient_identifiers],
        help_text="Give this to take the patient off the pathway (status exited) instead of completing it.",
    )

    def validate(self, attrs):
        if "exit_reason" in attrs and {"discharge_destination", "readmitted_30d", "complication"} & set(attrs):
            raise serializers.ValidationError(
                {"exit_reason": "An exit ends the pathway early: send either exit_reason or the discharge outcomes."}
            )
        return attrs


class EpisodeOutcomesSerializer(StrictSerializer):
    readmitted_30d = serializers.BooleanField(
        required=False, allow_null=True, help_text="Readmitted within 30 days of discharge; null: not known."
    )
    complication = serializers.BooleanField(
        required=False, allow_null=True, help_text="A complication during the episode; null: not known."
    )

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError(
                {"non_field_errors": ["Send readmitted_30d, complication or both: only what you send changes."]}
            )
        return attrs


class QuantityInputSerializer(StrictSerializer):
    resource = serializers.CharField(max_length=40, help_text="Resource code.")
    quantity = serializers.DecimalField(max_digits=12, decimal_places=3, min_value=0)
    headcount = serializers.IntegerField(min_value=1, max_value=100, required=False, default=1)
    unit_cost = serializers.DecimalField(
        max_digits=14,
        decimal_places=6,
        min_value=0,
        required=False,
        allow_null=True,
        help_text="Only where the actual price differs from the standard rate (e.g. a dearer implant).",
    )


class EventInputSerializer(StrictSerializer):
    step = serializers.CharField(
        max_length=40, required=False, allow_null=True, help_text="Step code; null with `activity` for unplanned work."
    )
    activity = serializers.CharField(
        max_length=200, required=False, allow_blank=True, validators=[validate_no_patient_identifiers]
    )
    occurred_at = StrictDateTimeField()
    performed_by = serializers.CharField(
        max_length=150, required=False, allow_blank=True, validators=[validate_no_patient_identifiers]
    )
    quantities = QuantityInputSerializer(many=True, required=False, max_length=50)
    external_id = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="Your system's id for the event. Ids are kept per sending account, so two systems may use the "
        "same ids. The same event sent again is answered with the one stored; something else under an id your "
        "account already used is refused (a recorded event is never changed).",
    )

    def validate(self, attrs):
        if not attrs.get("step") and not (attrs.get("activity") or "").strip():
            raise serializers.ValidationError(
                {"step": "Give the step code, or null with an activity for something not on the pathway."}
            )
        codes = [q["resource"] for q in attrs.get("quantities", [])]
        if len(codes) != len(set(codes)):
            raise serializers.ValidationError({"quantities": "Give each resource once."})
        return attrs


class VarianceCreateSerializer(StrictSerializer):
    episode = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    step = serializers.CharField(max_length=40, required=False, allow_null=True)
    resource = serializers.CharField(max_length=40, required=False, allow_null=True)
    type = serializers.ChoiceField(choices=Variance.Type.choices)
    cause = serializers.ChoiceField(choices=Variance.Cause.choices)
    reason = serializers.CharField(max_length=60, help_text="A code from /api/v1/reason-codes/.")
    valence = serializers.ChoiceField(choices=Variance.Valence.choices)
    level = serializers.ChoiceField(choices=Variance.Level.choices, required=False)
    rationale = serializers.CharField(
        max_length=5000, required=False, allow_blank=True, validators=[validate_no_patient_identifiers]
    )
    action_taken = serializers.CharField(
        max_length=5000, required=False, allow_blank=True, validators=[validate_no_patient_identifiers]
    )
    occurred_at = StrictDateTimeField()


class VariancePatchSerializer(StrictSerializer):
    """An amendment (or, for a detected variance, its explanation): only the fields sent change."""

    amendment_reason = serializers.CharField(
        max_length=2000,
        required=False,
        validators=[validate_no_patient_identifiers],
        help_text="Why it changes: required for a documented or reviewed variance.",
    )
    step = serializers.CharField(max_length=40, required=False, allow_null=True)
    resource = serializers.CharField(max_length=40, required=False, allow_null=True)
    type = serializers.ChoiceField(choices=Variance.Type.choices, required=False)
    cause = serializers.ChoiceField(choices=Variance.Cause.choices, required=False)
    reason = serializers.CharField(max_length=60, required=False)
    valence = serializers.ChoiceField(choices=Variance.Valence.choices, required=False)
    level = serializers.ChoiceField(choices=Variance.Level.choices, required=False)
    rationale = serializers.CharField(
        max_length=5000, required=False, allow_blank=True, validators=[validate_no_patient_identifiers]
    )
    action_taken = serializers.CharField(
        max_length=5000, required=False, allow_blank=True, validators=[validate_no_patient_identifiers]
    )
    occurred_at = StrictDateTimeField(required=False)


# --- lookups shared by the writes ---------------------------------------------------------------


def _step(version_id: int, code: str | None, field: str = "step") -> Step | None:
    if not code:
        return None
    step = Step.objects.filter(version_id=version_id, code=code).first()
    if step is None:
        raise exceptions.ValidationError({field: f"No step {code} on this episode's pathway version."})
    return step


def _resource(code: str | None) -> Resource | None:
    if not code:
        return None
    resource = Resource.objects.filter(code=code).first()
    if resource is None:
        raise exceptions.ValidationError({"resource": f"Unknown resource {code}."})
    return resource


def _reason(episode: Episode, code: str) -> ReasonCode:
    pathway_id = episode.version.pathway_id
    candidates = ReasonCode.objects.filter(code=code, retired=False).filter(
        Q(pathway__isnull=True) | Q(pathway_id=pathway_id)
    )
    # A pathway's local code wins over a base code of the same name.
    reason = sorted(candidates, key=lambda r: r.pathway_id is None)[:1]
    if not reason:
        raise exceptions.ValidationError({"reason": f"No current reason code {code} for this pathway."})
    return reason[0]


# --- filters ---------------------------------------------------------------------------------------


# What the code filters check a code against (an unknown one is a 400): reference data, as far as episodes
# can follow it. A pathway or step that so far exists only in a draft is its authors' business.
_FOLLOWED = ~Q(status=PathwayVersion.Status.DRAFT)
PATHWAY_CODES = {
    "codes": Pathway.objects.filter(pk__in=PathwayVersion.objects.filter(_FOLLOWED).values("pathway_id")),
    "noun": "pathway",
    "help_text": "Pathway code.",
}
STEP_CODES = {
    "codes": Step.objects.filter(version__in=PathwayVersion.objects.filter(_FOLLOWED)),
    "noun": "step",
    "help_text": "Step code.",
}
REASON_CODES = {"codes": ReasonCode.objects.all(), "noun": "reason", "help_text": "Reason code."}

OWN_NAME_ONLY = (
    "You can filter by your own username only; clinical leads and administrators filter by their team's clinicians."
)


class EpisodeFilter(StrictFilterSet):
    pathway = KnownCodeFilter(field_name="version__pathway__code", **PATHWAY_CODES)
    status = django_filters.ChoiceFilter(choices=Episode.Status.choices)
    org_unit = UnitFilter()
    since = SinceFilter(
        field_name="updated_at", lookup_expr="gte", help_text="Only episodes created or changed at or after this time."
    )
    patient_ref = django_filters.CharFilter()
    responsible_clinician = django_filters.CharFilter(
        method="by_clinician",
        help_text="Username. A clinician gives their own only; clinical leads and administrators any, for the "
        "units they lead or administer.",
    )

    class Meta:
        model = Episode
        fields = ["pathway", "status", "org_unit", "since", "patient_ref", "responsible_clinician"]

    def by_clinician(self, queryset, name, value):
        user = self.request.user
        if value == user.username:
            return queryset.filter(responsible_clinician=user)
        # Individual figures are private by default (DOMAIN.md): a clinician sees their own, as the
        # browser's "mine", and a lead their team's, so only in the units they lead or administer.
        lead_units = unit_ids_for(user, Membership.Role.CLINICAL_LEAD, Membership.Role.ADMIN)
        if not lead_units:
            raise exceptions.ValidationError({"responsible_clinician": [OWN_NAME_ONLY]})
        return queryset.filter(responsible_clinician__username=value, org_unit_id__in=lead_units)


class VarianceFilter(StrictFilterSet):
    pathway = KnownCodeFilter(field_name="episode__version__pathway__code", **PATHWAY_CODES)
    episode = IntegerFilter(field_name="episode_id", help_text="Episode id.")
    status = django_filters.ChoiceFilter(choices=Variance.Status.choices)
    type = django_filters.ChoiceFilter(field_name="variance_type", choices=Variance.Type.choices)
    cause = django_filters.ChoiceFilter(choices=Variance.Cause.choices)
    step = KnownCodeFilter(field_name="step__code", **STEP_CODES)
    reason = KnownCodeFilter(field_name="reason__code", **REASON_CODES)
    org_unit = UnitFilter(field_name="episode__org_unit")
    since = SinceFilter(method="changed_since", help_text="Only variances recorded or changed at or after this time.")

    class Meta:
        model = Variance
        fields = ["pathway", "episode", "status", "type", "cause", "step", "reason", "org_unit", "since"]

    def changed_since(self, queryset, name, value):
        changed = VarianceRevision.objects.filter(variance=OuterRef("pk"), changed_at__gte=value)
        return queryset.filter(Exists(changed))


class EventFilter(StrictFilterSet):
    step = KnownCodeFilter(field_name="step__code", **STEP_CODES)
    source = django_filters.ChoiceFilter(choices=StepEvent.Source.choices)

    class Meta:
        model = StepEvent
        fields = ["step", "source"]


class ReasonCodeFilter(StrictFilterSet):
    # The filters below declare and validate the parameters; filter_queryset applies
    # them together, because each one's absence has a meaning too (no retired codes,
    # no other pathway's local codes).
    pathway = CodeFilter(queryset=Pathway.objects.all(), help_text="Base codes plus this pathway's local codes.")
    category = django_filters.CharFilter()
    include_retired = BooleanFilter(help_text="Also list retired codes.")

    class Meta:
        model = ReasonCode
        fields = ["pathway", "category", "include_retired"]

    def filter_queryset(self, queryset):
        data = self.form.cleaned_data
        if not data.get("include_retired"):
            queryset = queryset.filter(retired=False)
        pathway = data.get("pathway")
        queryset = queryset.filter(Q(pathway__isnull=True) | Q(pathway=pathway) if pathway else Q(pathway__isnull=True))
        if data.get("category"):
            queryset = queryset.filter(category=data["category"])
        return queryset


# --- querysets ---------------------------------------------------------------------------------------


def events_queryset():
    quantities = EventQuantity.objects.select_related("resource").order_by("id")
    return StepEvent.objects.select_related("step", "recorded_by").prefetch_related(
        Prefetch("quantities", queryset=quantities)
    )


def variances_queryset():
    return Variance.objects.select_related(
        "episode__version__pathway", "episode__org_unit", "step", "resource", "reason", "recorded_by", "reviewed_by"
    )


def episode_in_full(queryset):
    variances = Variance.objects.select_related("step", "resource", "reason", "recorded_by", "reviewed_by")
    return queryset.select_related("version__pathway", "org_unit", "responsible_clinician").prefetch_related(
        Prefetch("events", queryset=events_queryset().order_by("occurred_at", "id")),
        Prefetch("variances", queryset=variances.order_by("occurred_at", "id")),
    )


# --- views: episodes -------------------------------------------------------------------------------


class EpisodeDetailMixin:
    # Set by config/api_urls.py to costing's figures; None leaves costs null.
    cost_summary: Callable | None = None

    def episode_response(self, request, episode_id: int, status_code=status.HTTP_200_OK) -> Response:
        episode = episode_in_full(Episode.objects).get(pk=episode_id)
        context = {"request": request, "cost_summary": self.cost_summary}
        headers = {"ETag": episode_etag(episode)}
        if status_code == status.HTTP_201_CREATED:
            headers["Location"] = reverse("api-episode", args=[episode.pk])
        return Response(EpisodeDetailSerializer(episode, context=context).data, status=status_code, headers=headers)


class EpisodeListCreate(EpisodeDetailMixin, ApiMixin, generics.ListAPIView):
    """Episodes in your units (newest first). POST starts one on a pathway's published version."""

    access_roles = EPISODE_ROLES
    etag_methods = ("POST",)
    queryset = Episode.objects.none()
    serializer_class = EpisodeSummarySerializer
    filterset_class = EpisodeFilter

    def get_queryset(self):
        return (
            episode_scope(self.request.user)
            .select_related("version__pathway", "org_unit", "responsible_clinician")
            .order_by("-started_at", "-id")
        )

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        audit_list_read("episode.list", self._page_rows, object_type="variances.episode")
        return response

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        self._page_rows = page if page is not None else list(queryset)
        return page

    @extend_schema(request=EpisodeCreateSerializer, responses={201: EpisodeDetailSerializer})
    def post(self, request):
        def start():
            serializer = EpisodeCreateSerializer(data=request.data, context={"request": request})
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            try:
                episode = services.episode_start(
                    pathway_version=data.get("pathway_version"),
                    pathway=data["pathway"],
                    patient_ref=data["patient_ref"],
                    org_unit=data["org_unit"],
                    responsible_clinician=data.get("responsible_clinician"),
                    started_at=data["started_at"],
                    actor=request.user,
                )
            except services.EpisodeAlreadyActive as exc:
                raise Conflict(exc.detail) from None  # the body is fine: the patient's record says no
            except DjangoValidationError as exc:
                raise _service_errors(exc, EPISODE_RENAMES) from None
            return self.episode_response(request, episode.pk, status.HTTP_201_CREATED)

        return idempotent(self, request, start)


class EpisodeDetail(EpisodeDetailMixin, ApiMixin, generics.GenericAPIView):
    """One episode with its events, variances, and expected and actual cost. Reading it is audited."""

    access_roles = EPISODE_ROLES
    etag_methods = ("GET",)
    serializer_class = EpisodeDetailSerializer
    filter_backends = []

    @extend_schema(responses=EpisodeDetailSerializer)
    def get(self, request, pk: int):
        episode = object_in_scope_or_404(episode_scope(request.user), label="episode", pk=pk)
        audit_episode_read(episode, via="api")
        return self.episode_response(request, episode.pk)


class EpisodeClose(EpisodeDetailMixin, ApiMixin, generics.GenericAPIView):
    """Complete the episode with its outcomes, or exit the pathway with `exit_reason`.

    If-Match is optional here; when sent, a stale ETag is refused with 412.
    """

    access_roles = EPISODE_ROLES
    etag_methods = ("POST",)
    if_match = "optional"
    serializer_class = EpisodeCloseSerializer
    filter_backends = []

    @extend_schema(request=EpisodeCloseSerializer, responses={200: EpisodeDetailSerializer})
    def post(self, request, pk: int):
        def close():
            episode = object_in_scope_or_404(episode_scope(request.user), label="episode", pk=pk)
            serializer = EpisodeCloseSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            check_if_match(request, episode_etag(episode), required=False)
            if episode.status != Episode.Status.ACTIVE:
                # The record's state forbids it, whatever was sent: 409, as documented.
                raise Conflict(f"This episode is already {episode.get_status_display().lower()}.")
            # The version If-Match named, compared again under the row lock: a change landing between
            # the check above and the close is not closed over unseen.
            expected = episode.row_version if request.headers.get("If-Match") else None
            try:
                if "exit_reason" in data:
                    services.episode_exit(
                        episode=episode,
                        ended_at=data["ended_at"],
                        reason=data["exit_reason"],
                        actor=request.user,
                        expected_revision=expected,
                    )
                else:
                    services.episode_close(
                        episode=episode,
                        ended_at=data["ended_at"],
                        discharge_destination=data.get("discharge_destination", ""),
                        readmitted_30d=data.get("readmitted_30d"),
                        complication=data.get("complication"),
                        actor=request.user,
                        expected_revision=expected,
                    )
            except services.StaleRevisionError as exc:
                raise PreconditionFailed(str(exc)) from None
            except DjangoValidationError as exc:
                raise _service_errors(exc, {"reason": "exit_reason", "__all__": "non_field_errors"}) from None
            return self.episode_response(request, episode.pk)

        return idempotent(self, request, close)


OUTCOMES_OF_ACTIVE_API = (
    "This episode is still active: close it first (POST its close/ with ended_at and the outcomes known at "
    "discharge). Outcomes learnt after discharge are recorded here once it has ended."
)


class EpisodeOutcomes(EpisodeDetailMixin, ApiMixin, generics.GenericAPIView):
    """Record or correct the outcomes of a completed or exited episode after discharge: a readmission within
    30 days, a complication coded later.

    Only the fields sent change; `null` records "not known", and a correction (true back to false) is allowed.
    Every change is audited with its before and after. Sending the values already recorded changes nothing (the
    ETag stays). If-Match is required, as for an amendment: the outcomes already recorded are not overwritten
    unseen. The same people may do it as may close the episode. An active episode answers 409: close it with
    the outcomes known at discharge.
    """

    access_roles = EPISODE_ROLES
    etag_methods = ("POST",)
    if_match = "required"
    serializer_class = EpisodeOutcomesSerializer
    filter_backends = []

    @extend_schema(request=EpisodeOutcomesSerializer, responses={200: EpisodeDetailSerializer})
    def post(self, request, pk: int):
        def record():
            episode = object_in_scope_or_404(episode_scope(request.user), label="episode", pk=pk)
            serializer = EpisodeOutcomesSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            check_if_match(request, episode_etag(episode))
            if episode.status == Episode.Status.ACTIVE:
                # The record's state forbids it, whatever was sent: 409, as for closing an ended episode.
                raise Conflict(OUTCOMES_OF_ACTIVE_API)
            try:
                services.episode_record_outcomes(
                    episode=episode,
                    **serializer.validated_data,
                    actor=request.user,
                    # The version If-Match named, compared again under the row lock: a change that lands
                    # between the check above and the write is not overwritten either.
                    expected_revision=episode.row_version,
                )
            except services.StaleRevisionError as exc:
                raise PreconditionFailed(str(exc)) from None
            except DjangoValidationError as exc:
                raise _service_errors(exc, EPISODE_RENAMES) from None
            return self.episode_response(request, episode.pk)

        return idempotent(self, request, record)


EVENT_BATCH = PolymorphicProxySerializer(
    component_name="EventOrBatch",
    serializers=[EventInputSerializer, EventInputSerializer(many=True)],
    resource_type_field_name=None,
    many=False,
)
RECORDED_EVENTS = PolymorphicProxySerializer(
    component_name="RecordedEventOrBatch",
    serializers=[RecordedEventSerializer, RecordedEventSerializer(many=True)],
    resource_type_field_name=None,
    many=False,
)


class EpisodeEvents(ApiMixin, generics.ListAPIView):
    """Events of one episode. POST records one event, or a list of up to 1,000 applied atomically."""

    access_roles = EPISODE_ROLES
    queryset = StepEvent.objects.none()
    serializer_class = EventSerializer
    filterset_class = EventFilter

    def get_episode(self) -> Episode:
        episode = getattr(self, "_episode", None)
        if episode is None:
            scope = episode_scope(self.request.user).select_related("version")
            episode = self._episode = object_in_scope_or_404(scope, label="episode", pk=self.kwargs["pk"])
        return episode

    def get_queryset(self):
        return events_queryset().filter(episode=self.get_episode()).order_by("occurred_at", "id")

    def list(self, request, *args, **kwargs):
        episode = self.get_episode()
        audit_episode_read(episode, via="api events")
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=EVENT_BATCH,
        responses={
            201: OpenApiResponse(RECORDED_EVENTS, "Recorded: the event, or the list in the order sent."),
            200: OpenApiResponse(RECORDED_EVENTS, "Nothing new: every external_id was already stored."),
        },
    )
    def post(self, request, pk: int):
        return idempotent(self, request, lambda: self._record(request))

    def _record(self, request) -> Response:
        episode = self.get_episode()
        batch = isinstance(request.data, list)
        if batch and not 1 <= len(request.data) <= MAX_BATCH:
            raise exceptions.ValidationError(
                {"non_field_errors": [f"Send between 1 and {MAX_BATCH:,} events in one request."]}
            )
        serializer = EventInputSerializer(data=request.data, many=batch)
        serializer.is_valid(raise_exception=True)
        items = serializer.validated_data if batch else [serializer.validated_data]
        steps = {s.code: s for s in Step.objects.filter(version_id=episode.version_id)}
        codes = {q["resource"] for item in items for q in item.get("quantities", [])}
        resources = {r.code: r for r in Resource.objects.filter(code__in=codes)}
        errors: list[dict] = [{} for _ in items]
        first_sent: dict[str, int] = {}
        for index, item in enumerate(items):
            # Two events under one external id would store the first and answer the second with it.
            external_id = (item.get("external_id") or "").strip()
            if external_id in first_sent:
                errors[index]["external_id"] = [
                    f"Event {first_sent[external_id]} of this batch has the same external id: give each its own."
                ]
            elif external_id:
                first_sent[external_id] = index
        recorded = []
        with transaction.atomic():
            for index, item in enumerate(items):
                unknown = sorted({q["resource"] for q in item.get("quantities", [])} - set(resources))
                if item.get("step") and item["step"] not in steps:
                    errors[index]["step"] = [f"No step {item['step']} on this episode's pathway version."]
                if unknown:
                    errors[index]["quantities"] = [
                        f"Unknown resource code{pluralize(len(unknown))}: {', '.join(unknown)}."
                    ]
                if errors[index]:
                    continue
                try:
                    event = services.event_record(
                        episode=episode,
                        step=steps.get(item.get("step") or ""),
                        activity=item.get("activity", ""),
                        occurred_at=item["occurred_at"],
                        performed_by=item.get("performed_by", ""),
                        source=StepEvent.Source.API,
                        external_id=item.get("external_id", ""),
                        quantities=[{**q, "resource": resources[q["resource"]]} for q in item.get("quantities", [])],
                        actor=request.user,
                        detect=False,
                    )
                except DjangoValidationError as exc:
                    errors[index] = _service_errors(exc, {"__all__": "non_field_errors"}).detail
                    continue
                recorded.append(event)
            if any(errors):
                # All or nothing: one bad event rolls back the whole batch.
                transaction.set_rollback(True)
            elif any(event.created for event in recorded):
                services.detection_queue(episode.pk)  # once for the batch, not once per event
        if any(errors):
            raise exceptions.ValidationError(errors if batch else errors[0])
        # New events are answered from the objects in hand; ones already stored are read back whole.
        stored = {e.pk: e for e in events_queryset().filter(pk__in=[e.pk for e in recorded if not e.created])}
        data = []
        for event in recorded:
            if not event.created:
                event = stored[event.pk]
                event.created = False
            data.append(RecordedEventSerializer(event).data)
        code = status.HTTP_201_CREATED if any(e.created for e in recorded) else status.HTTP_200_OK
        return Response(data if batch else data[0], status=code)


# --- views: variances ------------------------------------------------------------------------------


def _variance_response(request, variance: Variance | int, status_code=status.HTTP_200_OK) -> Response:
    """The variance as JSON with its ETag; pass an id to read it (in full) first."""
    if not isinstance(variance, Variance):
        variance = variances_queryset().get(pk=variance)
    headers = {"ETag": variance_etag(variance)}
    if status_code == status.HTTP_201_CREATED:
        headers["Location"] = reverse("api-variance", args=[variance.pk])
    data = VarianceSerializer(variance, context={"request": request}).data
    return Response(data, status=status_code, headers=headers)


class VarianceListCreate(ApiMixin, generics.ListAPIView):
    """Variances on episodes in your units. POST documents a departure (status documented)."""

    access_roles = EPISODE_ROLES
    etag_methods = ("POST",)
    queryset = Variance.objects.none()
    serializer_class = VarianceSerializer
    filterset_class = VarianceFilter

    def get_queryset(self):
        return (
            variance_scope(self.request.user)
            .select_related(
                "episode__version__pathway",
                "episode__org_unit",
                "step",
                "resource",
                "reason",
                "recorded_by",
                "reviewed_by",
            )
            .order_by("-occurred_at", "-id")
        )

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        self._page_rows = page if page is not None else list(queryset)
        return page

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        audit_list_read("variance.list", self._page_rows, object_type="variances.variance")
        return response

    @extend_schema(request=VarianceCreateSerializer, responses={201: VarianceSerializer})
    def post(self, request):
        def record():
            serializer = VarianceCreateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            # Everything the response shows of the episode, read once: the answer is built from the
            # objects in hand (a re-read joining ten tables costs more to plan than to run).
            scope = episode_scope(request.user).select_related("version__pathway", "org_unit")
            episode = scope.filter(pk=data["episode"]).first()
            if episode is None:
                raise exceptions.ValidationError({"episode": "No episode with this id is available to you."})
            try:
                variance = services.variance_record(
                    episode=episode,
                    step=_step(episode.version_id, data.get("step")),
                    resource=_resource(data.get("resource")),
                    variance_type=data["type"],
                    cause=data["cause"],
                    reason=_reason(episode, data["reason"]),
                    valence=data["valence"],
                    level=data.get("level", Variance.Level.PROCESS),
                    rationale=data.get("rationale", ""),
                    action_taken=data.get("action_taken", ""),
                    occurred_at=data["occurred_at"],
                    actor=request.user,
                )
            except DjangoValidationError as exc:
                raise _service_errors(exc, VARIANCE_RENAMES) from None
            return _variance_response(request, variance, status.HTTP_201_CREATED)

        return idempotent(self, request, record)


CANNOT_AMEND = (
    "You can read this variance but not amend it: whoever recorded it, the episode's responsible clinician, "
    "or a clinical lead or administrator of its unit can."
)


class VarianceDetail(ApiMixin, generics.GenericAPIView):
    """One variance. PATCH amends it (If-Match and `amendment_reason` required): whoever recorded it, the
    episode's responsible clinician, or a clinical lead or administrator of its unit; anyone else who can read
    it gets 403. A detected, unexplained variance is explained by a PATCH with cause, reason and valence."""

    access_roles = EPISODE_ROLES
    etag_methods = ("GET", "PATCH")
    serializer_class = VarianceSerializer
    filter_backends = []

    def get_variance(self, request, pk: int) -> Variance:
        scope = variance_scope(request.user).select_related("episode__version")
        return object_in_scope_or_404(scope, label="variance", pk=pk)

    @extend_schema(responses=VarianceSerializer)
    def get(self, request, pk: int):
        variance = self.get_variance(request, pk)
        audit_record(action="variance.read", obj=variance, episode_ref=variance.episode.patient_ref)
        return _variance_response(request, variance.pk)

    @extend_schema(request=VariancePatchSerializer, responses={200: VarianceSerializer})
    def patch(self, request, pk: int):
        variance = self.get_variance(request, pk)
        if variance.status != Variance.Status.UNEXPLAINED and not can_change_variance(request.user, variance):
            # The browser's rule (its amend page is 403 for them too). They may read it, so 404 would be untrue.
            raise exceptions.PermissionDenied(CANNOT_AMEND)
        serializer = VariancePatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        check_if_match(request, variance_etag(variance))
        if variance.status == Variance.Status.WITHDRAWN:
            # The record's state forbids any change, whatever was sent: 409, as for closing an ended episode.
            raise Conflict("This variance is withdrawn; only documented or reviewed variances are amended.")
        data = dict(serializer.validated_data)
        try:
            if variance.status == Variance.Status.UNEXPLAINED:
                self._explain(request, variance, data)
            else:
                self._amend(request, variance, data)
        except services.StaleRevisionError as exc:
            raise PreconditionFailed(str(exc)) from None
        except DjangoValidationError as exc:
            raise _service_errors(exc, VARIANCE_RENAMES) from None
        return _variance_response(request, variance.pk)

    def _amend(self, request, variance: Variance, data: dict) -> None:
        reason_text = data.pop("amendment_reason", "").strip()
        if not reason_text:
            raise exceptions.ValidationError({"amendment_reason": ["Say why you are changing this variance."]})
        if not data:
            raise exceptions.ValidationError({"non_field_errors": ["Send at least one field to change."]})
        episode = variance.episode
        changes = {}
        for name, value in data.items():
            if name == "type":
                changes["variance_type"] = value
            elif name == "step":
                changes["step"] = _step(episode.version_id, value)
            elif name == "resource":
                changes["resource"] = _resource(value)
            elif name == "reason":
                changes["reason"] = _reason(episode, value)
            else:
                changes[name] = value
        services.variance_amend(
            variance=variance,
            changes=changes,
            reason=reason_text,
            actor=request.user,
            expected_revision=variance.revision,
        )

    def _explain(self, request, variance: Variance, data: dict) -> None:
        not_here = sorted(set(data) - {"cause", "reason", "valence", "rationale", "action_taken", "amendment_reason"})
        if not_here:
            raise exceptions.ValidationError(
                {
                    name: ["A detected variance is explained, not changed: send cause, reason and valence."]
                    for name in not_here
                }
            )
        missing = [name for name in ("cause", "reason", "valence") if name not in data]
        if missing:
            raise exceptions.ValidationError({name: ["Needed to explain a detected variance."] for name in missing})
        reason = _reason(variance.episode, data["reason"])
        with transaction.atomic():
            # The explanation service has no revision guard: hold the row and compare ourselves.
            current = Variance.objects.select_for_update().only("revision").get(pk=variance.pk).revision
            if current != variance.revision:
                raise services.StaleRevisionError(expected=variance.revision, current=current)
            services.variance_explain(
                variance=variance,
                cause=data["cause"],
                reason=reason,
                valence=data["valence"],
                rationale=data.get("rationale", ""),
                action_taken=data.get("action_taken", ""),
                actor=request.user,
            )


class VarianceWithdrawSerializer(StrictSerializer):
    reason = serializers.CharField(
        max_length=500,
        validators=[validate_no_patient_identifiers],
        help_text="Why the variance is withdrawn (recorded in error, a duplicate...).",
    )


class VarianceWithdraw(ApiMixin, generics.GenericAPIView):
    """Withdraw a variance recorded in error: it stays, with its history, marked withdrawn (nothing is deleted).

    If-Match is required, as for an amendment; the same people may withdraw it as may amend it.
    """

    access_roles = EPISODE_ROLES
    etag_methods = ("POST",)
    if_match = "required"
    serializer_class = VarianceWithdrawSerializer
    filter_backends = []

    @extend_schema(request=VarianceWithdrawSerializer, responses={200: VarianceSerializer})
    def post(self, request, pk: int):
        def withdraw():
            scope = variance_scope(request.user).select_related("episode__version")
            variance = object_in_scope_or_404(scope, label="variance", pk=pk)
            if not can_change_variance(request.user, variance):
                raise exceptions.PermissionDenied(CANNOT_AMEND.replace("amend it", "withdraw it"))
            serializer = VarianceWithdrawSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            check_if_match(request, variance_etag(variance))
            if variance.status == Variance.Status.WITHDRAWN:
                raise Conflict("This variance is already withdrawn.")
            try:
                services.variance_withdraw(
                    variance=variance,
                    reason=serializer.validated_data["reason"],
                    actor=request.user,
                    expected_revision=variance.revision,
                )
            except services.StaleRevisionError as exc:
                raise PreconditionFailed(str(exc)) from None
            except DjangoValidationError as exc:
                if Variance.objects.filter(pk=variance.pk, status=Variance.Status.WITHDRAWN).exists():
                    raise Conflict("This variance is already withdrawn.") from None  # by a request beside ours
                raise _service_errors(exc, {"withdraw_reason": "reason"}) from None
            return _variance_response(request, variance.pk)

        return idempotent(self, request, withdraw)


class VarianceHistory(ApiMixin, generics.ListAPIView):
    """Every state of a variance, oldest first: who changed it, when and why."""

    access_roles = EPISODE_ROLES
    queryset = VarianceRevision.objects.none()
    serializer_class = RevisionSerializer
    filter_backends = []

    def get_queryset(self):
        scope = variance_scope(self.request.user).select_related("episode")
        variance = object_in_scope_or_404(scope, label="variance", pk=self.kwargs["pk"])
        self._variance = variance
        return VarianceRevision.objects.filter(variance=variance).select_related("changed_by").order_by("number")

    def get_serializer_context(self):
        context = super().get_serializer_context()
        page = getattr(self, "_page", [])
        snaps = [r.snapshot for r in page]

        def ids(key):
            return {s.get(key) for s in snaps if s.get(key)}

        context["codes"] = {
            "step": dict(Step.objects.filter(pk__in=ids("step_id")).values_list("pk", "code")),
            "resource": dict(Resource.objects.filter(pk__in=ids("resource_id")).values_list("pk", "code")),
            "reason": dict(ReasonCode.objects.filter(pk__in=ids("reason_id")).values_list("pk", "code")),
        }
        return context

    def paginate_queryset(self, queryset):
        self._page = super().paginate_queryset(queryset)
        return self._page

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        variance = self._variance
        audit_record(action="variance.history.read", obj=variance, episode_ref=variance.episode.patient_ref, detail={})
        return response


class ReasonCodeList(ApiMixin, generics.ListAPIView):
    """The reason catalogue: base codes (HL7 CDS Hooks non-adherence reasons), plus a pathway's local codes."""

    access_roles = ALL_ROLES
    queryset = ReasonCode.objects.select_related("pathway").order_by("category", "code", "id")
    serializer_class = ReasonCodeSerializer
    filterset_class = ReasonCodeFilter
