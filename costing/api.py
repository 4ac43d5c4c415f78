"""API: cost rates (finance), report runs, and the cost figures other apps' endpoints show.

``pathway_standard_cost`` and ``episode_costs`` are handed by ``config/api_urls.py``
to the pathway and episode endpoints, which cannot import ``costing`` themselves
(apps import one way: accounts <- pathways <- variances <- costing).
"""

from datetime import date

import django_filters
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, generics, serializers, status
from rest_framework.response import Response

from accounts.api_support import (
    ApiMixin,
    Conflict,
    IntegerFilter,
    MoneyField,
    ReportRequestThrottle,
    StrictDateField,
    StrictFilterSet,
    StrictSerializer,
    check_if_match,
    django_validation_detail,
    etag,
    idempotent,
    money_str,
    object_in_scope_or_404,
)
from accounts.models import OrgUnit
from accounts.permissions import ALL_ROLES, FINANCE_ROLES, unit_ids_for
from pathways.models import PathwayVersion, Resource
from variances.models import Episode

from .engine import cost_episode, direction
from .models import CostRate, ReportRun, financial_year_label, financial_year_of
from .rates import capacity_cost_rate, cost_rate_set
from .services import report_run_request
from .standard import version_standard_cost
from .suppression import audience_for, result_for

# --- figures for other apps' endpoints -------------------------------------------------------


def pathway_standard_cost(version: PathwayVersion, *, on: date | None = None) -> dict:
    """Expected cost E of one episode on ``version``, with the rates in force today."""
    cost = version_standard_cost(version, on=on)
    return {
        "amount": cost.expected_cost,
        "currency": cost.currency,
        "costed_on": cost.on,
        "financial_year": financial_year_label(cost.financial_year),
        "missing_rates": [r.code for r in cost.missing_rates],
        "steps": {sc.step.code: {"cost": sc.cost, "expected_cost": sc.expected_cost} for sc in cost.steps},
    }


def episode_costs(episode: Episode) -> dict:
    """Expected and actual cost of one episode (to date, for an active one) and its variance."""
    costing = cost_episode(episode)
    by_cause = costing.by_cause()
    return {
        "currency": settings.CURRENCY,
        "expected": costing.expected,
        "actual": costing.actual,
        "variance": costing.total_variance,
        "direction": direction(costing.total_variance),
        "price_variance": costing.price_variance,
        "usage_variance": costing.usage_variance,
        "los_variance": costing.los_variance,
        "capacity_variance": costing.capacity_variance,
        "variance_by_cause": {cause: money_str(amount) for cause, amount in by_cause.items()},
        "missing_rates": costing.missing_rates,
        "final": episode.status != Episode.Status.ACTIVE,
        "lines": [
            {
                "step": part.line.step.code if part.line.step else None,
                "activity": part.line.label,
                "resource": part.line.resource.code,
                "component": part.component,
                "nature": part.nature,
                "amount": part.amount,
                "direction": part.direction,
                "variance": part.variance.pk if part.variance else None,
                "cause": part.cause,
                "repeated": part.line.repeated,
            }
            for part in costing.decomposition()
        ],
    }


# --- cost rates ------------------------------------------------------------------------------------


def rate_etag(rate: CostRate) -> str:
    return etag(f"rate-{rate.pk}-{int(rate.updated_at.timestamp() * 1_000_000)}")


class CostRateSerializer(serializers.ModelSerializer):
    resource = serializers.CharField(source="resource.code")
    resource_name = serializers.CharField(source="resource.name")
    unit = serializers.CharField(source="resource.unit", help_text="The rate is per minute, item or day.")
    financial_year_label = serializers.SerializerMethodField()
    rate = MoneyField(help_text="Standard rate per unit, full precision.")
    capacity_cost = MoneyField(allow_null=True)
    theoretical_capacity_minutes = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    practical_factor = serializers.DecimalField(max_digits=4, decimal_places=3, allow_null=True)
    updated_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    # Declared, not derived: the model's bounds differ between SQLite and PostgreSQL, the schema must not.
    financial_year = serializers.IntegerField(read_only=True)
    price_year = serializers.IntegerField(read_only=True)

    class Meta:
        model = CostRate
        fields = [
            "id",
            "resource",
            "resource_name",
            "unit",
            "financial_year",
            "financial_year_label",
            "rate",
            "currency",
            "price_year",
            "source",
            "includes",
            "capacity_cost",
            "theoretical_capacity_minutes",
            "practical_factor",
            "updated_at",
            "updated_by",
        ]

    def get_financial_year_label(self, rate) -> str:
        return financial_year_label(rate.financial_year)


class CostRateWriteSerializer(StrictSerializer):
    """A rate, given directly (``rate``) or through the capacity cost rate calculator."""

    resource = serializers.SlugRelatedField(slug_field="code", queryset=Resource.objects.all())
    financial_year = serializers.IntegerField(min_value=2000, max_value=2100, help_text="2025 means FY 2025/26.")
    rate = serializers.DecimalField(max_digits=14, decimal_places=6, min_value=0, required=False)
    capacity_cost = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False)
    theoretical_capacity_minutes = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False
    )
    practical_factor = serializers.DecimalField(max_digits=4, decimal_places=3, required=False)
    price_year = serializers.IntegerField(min_value=2000, max_value=2100, required=False)
    currency = serializers.RegexField(
        r"^[A-Z]{3}$",
        required=False,
        help_text="Only the currency CommonPath costs in (the CURRENCY setting, GBP by default): "
        "costs add rates together without converting.",
    )
    source = serializers.CharField(max_length=300)
    includes = serializers.CharField(max_length=300, required=False, allow_blank=True)
    reason = serializers.CharField(
        max_length=500, required=False, allow_blank=True, help_text="Why the rate changes (kept in the audit trail)."
    )

    CCR_FIELDS = ("capacity_cost", "theoretical_capacity_minutes")

    def validate(self, attrs):
        ccr_given = [f for f in self.CCR_FIELDS if f in attrs]
        if ccr_given and "rate" in attrs:
            raise serializers.ValidationError(
                {"rate": "Give either the rate, or the capacity cost and theoretical minutes to calculate it."}
            )
        if ccr_given and len(ccr_given) < len(self.CCR_FIELDS):
            missing = [f for f in self.CCR_FIELDS if f not in attrs]
            raise serializers.ValidationError(dict.fromkeys(missing, "Needed to calculate the capacity cost rate."))
        if "practical_factor" in attrs and not ccr_given:
            raise serializers.ValidationError(
                {"practical_factor": "Only used with capacity_cost and theoretical_capacity_minutes."}
            )
        if not self.partial and not ccr_given and "rate" not in attrs:
            raise serializers.ValidationError(
                {"rate": "Give the rate, or the capacity cost and theoretical minutes to calculate it."}
            )
        return attrs


class CostRatePatchSerializer(CostRateWriteSerializer):
    """The fields of a rate that may change; resource and financial year identify it."""

    resource = None
    financial_year = None
    source = serializers.CharField(max_length=300, required=False)

    def validate(self, attrs):
        if not set(attrs) - {"reason"}:
            # An empty PATCH answered 200 as if it had changed something.
            raise serializers.ValidationError(
                "Nothing to change: give the rate (or capacity_cost and theoretical_capacity_minutes), "
                "price_year, currency, source or includes."
            )
        return super().validate(attrs)


# The calculator's argument names where the API's fields are named otherwise, so an error names the field sent.
_CCR_FIELDS = {"theoretical_minutes": "theoretical_capacity_minutes"}


def _apply_rate(*, resource, financial_year, data, current: CostRate | None, actor):
    ccr = None
    if "capacity_cost" in data:
        try:
            ccr = capacity_cost_rate(
                capacity_cost=data["capacity_cost"],
                theoretical_minutes=data["theoretical_capacity_minutes"],
                **({"practical_factor": data["practical_factor"]} if "practical_factor" in data else {}),
            )
        except DjangoValidationError as exc:
            raise DjangoValidationError(
                {_CCR_FIELDS.get(name, name): errors for name, errors in exc.message_dict.items()}
            ) from None

    def keep(name, default=None):
        return data[name] if name in data else (getattr(current, name) if current is not None else default)

    # A PATCH of the wording only, or of the same rate, keeps the calculator's working (cost_rate_set).
    return cost_rate_set(
        resource=resource,
        financial_year=financial_year,
        rate=data.get("rate", current.rate if current is not None else None),
        price_year=keep("price_year"),
        source=keep("source"),
        includes=keep("includes", ""),
        currency=keep("currency"),
        ccr=ccr,
        actor=actor,
        reason=data.get("reason", ""),
    )


class CostRateFilter(StrictFilterSet):
    resource = django_filters.CharFilter(field_name="resource__code", help_text="Resource code.")
    financial_year = IntegerFilter(max_value=9999, help_text="Start year of the financial year: 2025 is FY 2025/26.")
    in_force_on = django_filters.DateFilter(method="filter_in_force", help_text="Only the rates in force on this date.")

    class Meta:
        model = CostRate
        fields = ["resource", "financial_year", "in_force_on"]

    def filter_in_force(self, queryset, name, value):
        ids = {}
        for rate_id, resource_id in (
            queryset.filter(financial_year__lte=financial_year_of(value))
            .order_by("resource_id", "-financial_year")
            .values_list("id", "resource_id")
        ):
            ids.setdefault(resource_id, rate_id)
        return queryset.filter(pk__in=ids.values())


class CostRateListCreate(ApiMixin, generics.ListCreateAPIView):
    """Standard rates per resource and financial year (finance). Changes are audited with before and after."""

    access_roles = FINANCE_ROLES
    etag_methods = ("POST",)
    queryset = CostRate.objects.select_related("resource", "updated_by").order_by("resource__code", "-financial_year")
    serializer_class = CostRateSerializer
    filterset_class = CostRateFilter

    def get_serializer_class(self):
        return CostRateWriteSerializer if self.request.method == "POST" else CostRateSerializer

    @extend_schema(request=CostRateWriteSerializer, responses={201: CostRateSerializer})
    def post(self, request):
        def create():
            serializer = CostRateWriteSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            resource, year = data["resource"], data["financial_year"]
            existing = CostRate.objects.filter(resource=resource, financial_year=year).first()
            if existing is not None:
                raise Conflict(
                    f"{resource.code} already has a rate for FY {financial_year_label(year)} (id {existing.pk}); "
                    "PATCH it with If-Match to change it."
                )
            rate, _outcome = _apply_rate(
                resource=resource, financial_year=year, data=data, current=None, actor=request.user
            )
            return _rate_response(request, rate, status.HTTP_201_CREATED)

        return idempotent(self, request, create)


def _rate_response(request, rate: CostRate, status_code=status.HTTP_200_OK) -> Response:
    rate = CostRate.objects.select_related("resource", "updated_by").get(pk=rate.pk)
    headers = {"ETag": rate_etag(rate)}
    if status_code == status.HTTP_201_CREATED:
        headers["Location"] = reverse("api-cost-rate", args=[rate.pk])
    return Response(CostRateSerializer(rate).data, status=status_code, headers=headers)


class CostRateDetail(ApiMixin, generics.GenericAPIView):
    """One rate. PATCH changes it (If-Match required) and is audited as a rate change."""

    access_roles = FINANCE_ROLES
    etag_methods = ("GET", "PATCH")
    queryset = CostRate.objects.select_related("resource", "updated_by")
    serializer_class = CostRateSerializer
    filter_backends = []

    @extend_schema(responses=CostRateSerializer)
    def get(self, request, pk: int):
        return _rate_response(request, object_in_scope_or_404(self.get_queryset(), label="cost rate", pk=pk))

    @extend_schema(
        request=CostRatePatchSerializer,
        responses={200: OpenApiResponse(CostRateSerializer, "The rate after the change.")},
    )
    def patch(self, request, pk: int):
        serializer = CostRatePatchSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            current = CostRate.objects.select_for_update().filter(pk=pk).first()
            if current is None:
                raise exceptions.NotFound("No cost rate with this identifier is available to you.")
            # Checked under the row lock: two finance users cannot both win with the same ETag.
            check_if_match(request, rate_etag(current))
            rate, _outcome = _apply_rate(
                resource=current.resource,
                financial_year=current.financial_year,
                data=serializer.validated_data,
                current=current,
                actor=request.user,
            )
        return _rate_response(request, rate)


# --- report runs ---------------------------------------------------------------------------------------


class ReportParametersSerializer(StrictSerializer):
    org_unit = serializers.CharField(max_length=32, help_text="Org unit code: the report covers its whole subtree.")
    date_from = StrictDateField(help_text="Episodes started on or after this date.")
    date_to = StrictDateField(help_text="Episodes started on or before this date.")
    pathways = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        max_length=50,
        help_text="Pathway codes; none for all pathways.",
    )


class ReportRequestSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=ReportRun.Kind.choices)
    parameters = ReportParametersSerializer()


class ReportRunSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    progress = serializers.IntegerField(read_only=True, help_text="Percent done, 0-100.")
    result = serializers.SerializerMethodField(
        help_text="When succeeded: summary, tables and notes, with small cells shown as '*' where your role needs it."
    )

    class Meta:
        model = ReportRun
        fields = [
            "id",
            "kind",
            "status",
            "progress",
            "parameters",
            "requested_at",
            "started_at",
            "finished_at",
            "error",
            "url",
            "result",
        ]

    def get_url(self, run) -> str:
        return reverse("api-report", args=[run.pk])

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_result(self, run):
        if run.status != ReportRun.Status.SUCCEEDED:
            return None
        user = self.context["request"].user
        # One place decides what a viewer may see of a result: named individuals, small cells.
        return result_for(run.result, audience_for(user, run.org_unit_id))


class ReportRunAcceptedSerializer(ReportRunSerializer):
    joined = serializers.BooleanField(help_text="True when an identical report was already queued or running.")

    class Meta(ReportRunSerializer.Meta):
        fields = [*ReportRunSerializer.Meta.fields, "joined"]


class ReportRequest(ApiMixin, generics.GenericAPIView):
    """Request a variance or cost report: 202 with the run and a Location to poll.

    An identical request still queued or running is joined rather than computed twice.
    Requests are rate-limited per client (429 with Retry-After).
    """

    access_roles = ALL_ROLES
    serializer_class = ReportRequestSerializer
    throttle_classes = [ReportRequestThrottle]
    filter_backends = []

    @extend_schema(
        request=ReportRequestSerializer,
        responses={202: OpenApiResponse(ReportRunAcceptedSerializer, "Accepted: poll the Location.")},
    )
    def post(self, request):
        def run_report():
            serializer = ReportRequestSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            params = dict(data["parameters"])
            unit = OrgUnit.objects.filter(code=params["org_unit"]).first()
            if unit is None or unit.pk not in unit_ids_for(request.user, *ALL_ROLES):
                raise exceptions.ValidationError({"parameters": {"org_unit": ["You cannot run reports on this unit."]}})
            try:
                run, joined = report_run_request(kind=data["kind"], parameters=params, actor=request.user)
            except DjangoValidationError as exc:
                detail = django_validation_detail(exc)
                raise exceptions.ValidationError({"parameters": detail} if "kind" not in detail else detail) from None
            run.joined = joined
            body = ReportRunAcceptedSerializer(run, context={"request": request}).data
            return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})

        return idempotent(self, request, run_report)


class ReportRunDetail(ApiMixin, generics.GenericAPIView):
    """A report run: status and progress, and the result once it has succeeded."""

    access_roles = ALL_ROLES
    serializer_class = ReportRunSerializer
    filter_backends = []

    @extend_schema(responses=ReportRunSerializer)
    def get(self, request, pk: int):
        scope = ReportRun.objects.filter(org_unit_id__in=unit_ids_for(request.user, *ALL_ROLES))
        run = object_in_scope_or_404(scope, label="report run", pk=pk)
        return Response(ReportRunSerializer(run, context={"request": request}).data)
