"""API: published pathways in full (stages, steps with timing windows, planned resources).

Any member may read published and retired versions (a pathway is the trust's
agreed plan, not patient data); drafts are visible only to the clinical leads
and admins whose units own the pathway.

The expected cost is the ``costing`` app's figure. Apps import one way
(accounts <- pathways <- variances <- costing), so ``config/api_urls.py`` hands
these views a ``standard_cost`` function: ``standard_cost(version)`` returns
``{"amount", "currency", "costed_on", "financial_year", "missing_rates",
"steps": {step code: {"cost", "expected_cost"}}}``.
"""

from collections.abc import Callable

import django_filters
from django.db.models import OuterRef, Prefetch, Q, Subquery
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.response import Response

from accounts.api_support import ApiMixin, MoneyField, StrictFilterSet, UnitFilter, object_in_scope_or_404
from accounts.permissions import ALL_ROLES, AUTHOR_ROLES, unit_ids_for

from .models import Pathway, PathwayVersion, PlannedResource, Stage, Step

VISIBLE_TO_ALL = (PathwayVersion.Status.PUBLISHED, PathwayVersion.Status.RETIRED)


def visible_versions(user):
    """Published and retired versions for everyone; drafts for the authors of the owning units."""
    authored = unit_ids_for(user, *AUTHOR_ROLES)
    return PathwayVersion.objects.filter(Q(status__in=VISIBLE_TO_ALL) | Q(pathway__owner_unit_id__in=authored))


def version_in_full(version_qs):
    """One version with everything the detail shows, in a fixed number of queries."""
    steps = (
        Step.objects.select_related("anchor")
        .prefetch_related(
            Prefetch("must_follow", queryset=Step.objects.only("id", "code")),
            Prefetch("planned_resources", queryset=PlannedResource.objects.select_related("resource").order_by("id")),
        )
        .order_by("order", "id")
    )
    return version_qs.select_related("pathway__owner_unit").prefetch_related(
        Prefetch("stages", queryset=Stage.objects.order_by("order", "id").prefetch_related(Prefetch("steps", steps)))
    )


# --- serializers ---------------------------------------------------------------------------


class PlannedResourceSerializer(serializers.Serializer):
    resource = serializers.CharField(source="resource.code", help_text="Resource code.")
    name = serializers.CharField(source="resource.name")
    kind = serializers.CharField(source="resource.kind")
    unit = serializers.CharField(source="resource.unit", help_text="minute, item or day.")
    quantity = serializers.DecimalField(max_digits=12, decimal_places=3, help_text="Per occurrence, per head.")
    headcount = serializers.IntegerField()


class TimingSerializer(serializers.Serializer):
    anchor = serializers.SerializerMethodField(help_text="Step code the window counts from; null: the episode start.")
    min_minutes = serializers.IntegerField(source="window_min_minutes", allow_null=True)
    max_minutes = serializers.IntegerField(source="window_max_minutes", allow_null=True)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_anchor(self, step) -> str | None:
        return step.anchor.code if step.anchor_id else None


class StepCostSerializer(serializers.Serializer):
    cost = MoneyField(help_text="One occurrence: sum of headcount x quantity x rate.")
    expected_cost = MoneyField(help_text="Expected count x cost.")


class StepSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    type = serializers.CharField(source="step_type")
    mandatory = serializers.BooleanField()
    criticality = serializers.IntegerField(help_text="1 (routine) to 5 (critical).")
    evidence = serializers.CharField()
    guidance = serializers.CharField()
    timing = TimingSerializer(source="*", help_text="Due between min and max minutes after the anchor.")
    must_follow = serializers.SerializerMethodField(help_text="Codes of the steps this one must come after.")
    per_day = serializers.BooleanField()
    expected_count = serializers.DecimalField(
        max_digits=8, decimal_places=3, help_text="1, expected days (per-day step), sessions or a probability."
    )
    planned_resources = PlannedResourceSerializer(many=True)
    standard_cost = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_must_follow(self, step) -> list[str]:
        return [before.code for before in step.must_follow.all()]

    @extend_schema_field(StepCostSerializer(allow_null=True))
    def get_standard_cost(self, step):
        costs = self.context.get("version_cost")
        if not costs:
            return None
        return StepCostSerializer(costs["steps"].get(step.code)).data


class StageSerializer(serializers.Serializer):
    name = serializers.CharField()
    order = serializers.IntegerField()
    steps = StepSerializer(many=True)


class ExpectedCostSerializer(serializers.Serializer):
    amount = MoneyField(help_text="E = sum over steps of expected count x step cost, at full precision.")
    currency = serializers.CharField()
    costed_on = serializers.DateField(help_text="Rates in force on this date were used.")
    financial_year = serializers.CharField()
    missing_rates = serializers.ListField(
        child=serializers.CharField(), help_text="Resources with no rate in force: costed at zero."
    )


class PathwayVersionSerializer(serializers.Serializer):
    code = serializers.CharField(source="pathway.code")
    name = serializers.CharField(source="pathway.name")
    specialty = serializers.CharField(source="pathway.specialty")
    owner_unit = serializers.CharField(source="pathway.owner_unit.code")
    description = serializers.CharField(source="pathway.description")
    version = serializers.IntegerField(source="number")
    status = serializers.CharField()
    change_note = serializers.CharField()
    published_at = serializers.DateTimeField(allow_null=True)
    effective_from = serializers.DateField(allow_null=True)
    retired_at = serializers.DateTimeField(allow_null=True)
    expected_cost = serializers.SerializerMethodField()
    stages = StageSerializer(many=True)

    @extend_schema_field(ExpectedCostSerializer(allow_null=True))
    def get_expected_cost(self, version):
        costs = self.context.get("version_cost")
        return ExpectedCostSerializer(costs).data if costs else None


class PathwaySummarySerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    specialty = serializers.CharField()
    owner_unit = serializers.CharField(source="owner_unit.code")
    current_version = serializers.IntegerField(
        allow_null=True, help_text="Number of the published version; null when none is published."
    )


class PathwayFilter(StrictFilterSet):
    org_unit = UnitFilter(field_name="owner_unit", help_text="Pathways owned by this unit or a unit below it.")
    specialty = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Pathway
        fields = ["org_unit", "specialty"]


# --- views ---------------------------------------------------------------------------------


class StandardCostMixin:
    # Set by config/api_urls.py to costing's figure; None leaves expected_cost null.
    standard_cost: Callable | None = None

    def respond_with_version(self, version):
        context = self.get_serializer_context()
        context["version_cost"] = self.standard_cost(version) if self.standard_cost else None
        return Response(PathwayVersionSerializer(version, context=context).data)


class PathwayList(ApiMixin, generics.ListAPIView):
    """Pathways with a published version (and, for their authors, pathways still in draft)."""

    access_roles = ALL_ROLES
    queryset = Pathway.objects.none()
    serializer_class = PathwaySummarySerializer
    filterset_class = PathwayFilter

    def get_queryset(self):
        published = PathwayVersion.objects.filter(pathway=OuterRef("pk"), status=PathwayVersion.Status.PUBLISHED)
        visible = visible_versions(self.request.user).values("pathway_id")
        return (
            Pathway.objects.filter(pk__in=visible)
            .select_related("owner_unit")
            .annotate(current_version=Subquery(published.values("number")[:1]))
            .order_by("code")
        )


class PathwayDetail(StandardCostMixin, ApiMixin, generics.GenericAPIView):
    """The current published version of a pathway in full, with its expected cost per episode."""

    access_roles = ALL_ROLES
    serializer_class = PathwayVersionSerializer
    filter_backends = []

    @extend_schema(responses=PathwayVersionSerializer)
    def get(self, request, code: str):
        published = version_in_full(PathwayVersion.objects.published())
        version = object_in_scope_or_404(published, label="published pathway", pathway__code=code)
        return self.respond_with_version(version)


class PathwayVersionDetail(StandardCostMixin, ApiMixin, generics.GenericAPIView):
    """One version of a pathway (published, retired, or a draft you author), in full."""

    access_roles = ALL_ROLES
    serializer_class = PathwayVersionSerializer
    filter_backends = []

    @extend_schema(responses=PathwayVersionSerializer)
    def get(self, request, code: str, number: int):
        versions = version_in_full(visible_versions(request.user))
        version = object_in_scope_or_404(versions, label="pathway version", pathway__code=code, number=number)
        return self.respond_with_version(version)
