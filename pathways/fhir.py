"""FHIR R4 view of a pathway: ``GET /api/v1/fhir/PlanDefinition/{code}``.

The current published version becomes a PlanDefinition (type clinical-protocol):
one action per stage, holding one action per step with the step's code, its
timing window (``timingRange`` in minutes from the episode start, or a
``relatedAction`` offset from its anchor step), the steps it must follow, its
required behaviour (mandatory: must) and the staff and rooms it uses.
"""

import math
import re

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.response import Response

from accounts.api_support import FHIR_FORMAT, ApiMixin, FhirMixin, object_in_scope_or_404
from accounts.permissions import ALL_ROLES

from .api import version_in_full
from .models import PathwayVersion, Resource, Step

STEP_SYSTEM = "urn:commonpath:step"
RESOURCE_SYSTEM = "urn:commonpath:resource"
PATHWAY_SYSTEM = "urn:commonpath:pathway"
UCUM = "http://unitsofmeasure.org"
STATUS = {
    PathwayVersion.Status.PUBLISHED: "active",
    PathwayVersion.Status.RETIRED: "retired",
    PathwayVersion.Status.DRAFT: "draft",
}
PARTICIPANT_TYPE = {
    Resource.Kind.STAFF: "practitioner",
    Resource.Kind.ROOM: "device",
    Resource.Kind.EQUIPMENT: "device",
}


def plan_definition_url(request, code: str) -> str:
    return request.build_absolute_uri(f"/api/v1/fhir/PlanDefinition/{code}")


def _minutes(value: int) -> dict:
    return {"value": value, "unit": "min", "system": UCUM, "code": "min"}


def _range(low: int | None, high: int | None) -> dict:
    out = {}
    if low is not None:
        out["low"] = _minutes(low)
    if high is not None:
        out["high"] = _minutes(high)
    return out


def _window_text(step: Step) -> str:
    low, high = step.window_min_minutes, step.window_max_minutes
    anchor = f"the end of {step.anchor.code}" if step.anchor_id else "the episode start"
    if low is not None and high is not None:
        return f"Due {low}-{high} minutes after {anchor}."
    if low is not None:
        return f"Due no earlier than {low} minutes after {anchor}."
    return f"Due within {high} minutes of {anchor}."


def step_action(step: Step) -> dict:
    action = {
        "id": step.code,
        "title": step.name,
        "code": [{"coding": [{"system": STEP_SYSTEM, "code": step.code, "display": step.name}], "text": step.name}],
        "requiredBehavior": "must" if step.mandatory else "could",
        "priority": "urgent" if step.criticality >= 4 else "routine",
    }
    if step.guidance:
        action["description"] = step.guidance
    if step.evidence:
        action["documentation"] = [{"type": "citation", "display": step.evidence}]
    related = []
    if step.per_day:
        repeat = {"frequency": 1, "period": 1, "periodUnit": "d"}
        if step.expected_count > 0:
            repeat["count"] = max(1, math.ceil(step.expected_count))
        action["timingTiming"] = {"repeat": repeat}
        action["textEquivalent"] = f"Each day of the stay; {step.expected_count.normalize()} days expected."
    elif step.has_window:
        action["textEquivalent"] = _window_text(step)
        if step.anchor_id is None:
            action["timingRange"] = _range(step.window_min_minutes, step.window_max_minutes)
    if step.anchor_id is not None:
        entry = {"actionId": step.anchor.code, "relationship": "after-end"}
        if step.has_window:
            entry["offsetRange"] = _range(step.window_min_minutes, step.window_max_minutes)
        related.append(entry)
    for before in step.must_follow.all():
        if before.pk != step.anchor_id:
            related.append({"actionId": before.code, "relationship": "after"})
    if related:
        action["relatedAction"] = related
    participants = []
    for planned in step.planned_resources.all():
        kind = PARTICIPANT_TYPE.get(planned.resource.kind)
        if kind:
            role = {"system": RESOURCE_SYSTEM, "code": planned.resource.code, "display": planned.resource.name}
            participants.append({"type": kind, "role": {"coding": [role], "text": planned.resource.name}})
    if participants:
        action["participant"] = participants
    return action


def fhir_name(code: str) -> str:
    """A computer-friendly name as FHIR's rule inv-0 wants it (``[A-Z]([A-Za-z0-9_]){0,254}``): TKR-2 -> Tkr2."""
    name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", code))
    return name if name[:1].isalpha() else f"Pathway{name}"


def plan_definition(version: PathwayVersion, *, url: str) -> dict:
    """The version as a FHIR R4 PlanDefinition resource (a plain dict, JSON-ready)."""
    pathway = version.pathway
    resource = {
        "resourceType": "PlanDefinition",
        "id": pathway.code,
        "url": url,
        "identifier": [{"system": PATHWAY_SYSTEM, "value": pathway.code}],
        "version": str(version.number),
        "name": fhir_name(pathway.code),
        "title": pathway.name,
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/plan-definition-type",
                    "code": "clinical-protocol",
                    "display": "Clinical Protocol",
                }
            ]
        },
        "status": STATUS[version.status],
        "publisher": pathway.owner_unit.name,
        "action": [
            {
                "id": f"stage-{stage.order}-{stage.pk}",
                "title": stage.name,
                "action": [step_action(step) for step in stage.steps.all()],
            }
            for stage in version.stages.all()
        ],
    }
    if version.published_at:
        resource["date"] = version.published_at.isoformat()
    if pathway.description:
        resource["description"] = pathway.description
    if version.effective_from:
        resource["effectivePeriod"] = {"start": version.effective_from.isoformat()}
    return resource


class PlanDefinitionView(FhirMixin, ApiMixin, generics.GenericAPIView):
    """The current published version of a pathway as a FHIR R4 PlanDefinition (application/fhir+json)."""

    access_roles = ALL_ROLES

    @extend_schema(
        parameters=[FHIR_FORMAT],
        responses={(200, "application/fhir+json"): OpenApiResponse(OpenApiTypes.OBJECT, "FHIR R4 PlanDefinition")},
    )
    def get(self, request, code: str):
        published = version_in_full(PathwayVersion.objects.published())
        version = object_in_scope_or_404(published, label="published pathway", pathway__code=code)
        return Response(plan_definition(version, url=plan_definition_url(request, code)))
