"""API: schema and docs, the org units in the caller's scope, and the caller's own API tokens."""

import django_filters
from django.contrib.auth.views import redirect_to_login
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import generics, serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from .api_support import ApiMixin, StrictFilterSet, idempotent, object_in_scope_or_404
from .models import ApiToken, OrgUnit
from .permissions import ALL_ROLES, unit_ids_for
from .services import api_token_revoke


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema, for any signed-in user or token holder."""

    permission_classes = [IsAuthenticated]

    @classmethod
    def as_view(cls, *args, **initkwargs):
        view = super().as_view(*args, **initkwargs)
        view.access_rule = ("authenticated",)
        return view


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI from drf-spectacular-sidecar's local assets; signed-out browsers go to sign-in."""

    permission_classes = [AllowAny]
    template_name = "api/swagger_ui.html"

    @classmethod
    def as_view(cls, *args, **initkwargs):
        view = super().as_view(*args, **initkwargs)
        view.access_rule = ("authenticated",)
        return view

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        if not getattr(request.user, "is_authenticated", False):
            return redirect_to_login(request.get_full_path())
        return super().get(request, *args, **kwargs)


class OrgUnitSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)

    class Meta:
        model = OrgUnit
        fields = ["code", "name", "kind", "parent"]


class OrgUnitFilter(StrictFilterSet):
    kind = django_filters.ChoiceFilter(choices=OrgUnit.Kind.choices)
    parent = django_filters.CharFilter(field_name="parent__code", help_text="Units directly under this unit code.")

    class Meta:
        model = OrgUnit
        fields = ["kind", "parent"]


class OrgUnitList(ApiMixin, generics.ListAPIView):
    """Org units where you hold a role (with everything below them), in tree order.

    Use their codes for `org_unit` in episodes and report parameters.
    """

    access_roles = ALL_ROLES
    queryset = OrgUnit.objects.none()  # the model, for the schema; get_queryset scopes it
    serializer_class = OrgUnitSerializer
    filterset_class = OrgUnitFilter

    def get_queryset(self):
        return (
            OrgUnit.objects.filter(pk__in=unit_ids_for(self.request.user, *ALL_ROLES))
            .select_related("parent")
            .order_by("path")
        )


class ApiTokenSerializer(serializers.ModelSerializer):
    usable = serializers.BooleanField(source="is_usable", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "prefix", "name", "created_at", "expires_at", "revoked_at", "last_used_at", "usable"]


class ApiTokenList(ApiMixin, generics.ListAPIView):
    """Your own API tokens (never their secrets). Create them with `manage.py create_api_token`."""

    access_roles = ALL_ROLES
    queryset = ApiToken.objects.none()
    serializer_class = ApiTokenSerializer

    def get_queryset(self):
        return ApiToken.objects.filter(user=self.request.user).order_by("-created_at", "-id")


class ApiTokenRevoke(ApiMixin, generics.GenericAPIView):
    """Revoke one of your own tokens at once (e.g. when rotating a service account's token)."""

    access_roles = ALL_ROLES
    serializer_class = ApiTokenSerializer

    def get_queryset(self):
        return ApiToken.objects.filter(user=self.request.user)

    @extend_schema(request=None, responses=ApiTokenSerializer)
    def post(self, request, pk: int):
        def revoke():
            token = object_in_scope_or_404(self.get_queryset(), label="token", pk=pk)
            return Response(ApiTokenSerializer(api_token_revoke(token=token, actor=request.user)).data)

        return idempotent(self, request, revoke)
