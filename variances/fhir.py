"""FHIR R4 view of an episode: ``GET /api/v1/fhir/CarePlan/{episode id}``.

The CarePlan instantiates the pathway's PlanDefinition (``url|version``) for the
patient, who is identified by the pseudonymous reference only. Each step of the
version is an activity whose status says what happened:

- ``completed``: an event recorded the step (``in-progress`` for a per-day step
  while the episode is still active);
- ``scheduled``: not yet done, with its due window known (``scheduledPeriod``);
- ``not-started``: not yet done, window not yet known (its anchor step has not
  happened) or none;
- ``cancelled``: the episode ended without it.

A documented variance on a step is given as the activity's coded ``statusReason``
(never its free-text rationale). Activities off the pathway are listed as
completed activities with their description.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.response import Response

from accounts.api_support import FHIR_FORMAT, ApiMixin, FhirMixin, object_in_scope_or_404
from accounts.permissions import EPISODE_ROLES
from pathways.fhir import STEP_SYSTEM, plan_definition_url

from .api import audit_episode_read, episode_scope
from .detection import EventFact, first_events, load_step_specs, window
from .models import Episode, Variance

STATUS = {
    Episode.Status.ACTIVE: "active",
    Episode.Status.COMPLETED: "completed",
    Episode.Status.EXITED: "revoked",
}
REASON_SYSTEM = "urn:commonpath:reason"


def _activity_status(*, done: bool, per_day: bool, active: bool, due: bool) -> str:
    if done:
        return "in-progress" if per_day and active else "completed"
    if not active:
        return "cancelled"
    return "scheduled" if due else "not-started"


def care_plan(episode: Episode, *, plan_url: str) -> dict:
    """The episode as a FHIR R4 CarePlan (a plain dict, JSON-ready)."""
    version = episode.version
    specs = load_step_specs([version.pk]).get(version.pk, [])
    steps = {step.pk: step for step in version.steps.all()}
    events = list(episode.events.all())
    facts = [EventFact(id=e.pk, step_id=e.step_id, activity=e.activity, occurred_at=e.occurred_at) for e in events]
    first = first_events(specs, facts)
    reasons = {}
    for variance in episode.variances.all():
        if variance.step_id and variance.reason_id and variance.status != Variance.Status.WITHDRAWN:
            reasons.setdefault(variance.step_id, variance.reason)
    active = episode.status == Episode.Status.ACTIVE

    activities = []
    for spec in specs:
        step = steps[spec.id]
        due_from, due_by = window(spec, started_at=episode.started_at, first=first)
        done = spec.id in first
        detail = {
            "kind": "ServiceRequest",
            "code": {"coding": [{"system": STEP_SYSTEM, "code": step.code, "display": step.name}], "text": step.name},
            "status": _activity_status(done=done, per_day=spec.per_day, active=active, due=bool(due_from or due_by)),
            "doNotPerform": False,
        }
        if (due_from or due_by) and not spec.per_day:
            period = {}
            if due_from:
                period["start"] = due_from.isoformat()
            if due_by:
                period["end"] = due_by.isoformat()
            detail["scheduledPeriod"] = period
        reason = reasons.get(spec.id)
        if reason is not None:
            coding = {"system": reason.system or REASON_SYSTEM, "code": reason.code, "display": reason.display}
            detail["statusReason"] = {"coding": [coding], "text": reason.display}
        activity = {"detail": detail}
        if done:
            activity["progress"] = [{"time": first[spec.id].occurred_at.isoformat(), "text": "Recorded as done."}]
        activities.append(activity)
    for event in events:
        if event.step_id is None:
            activities.append(
                {
                    "detail": {
                        "kind": "ServiceRequest",
                        "code": {"text": event.activity},
                        "status": "completed",
                        "doNotPerform": False,
                        "description": f"Not on the pathway: {event.activity}",
                        "scheduledPeriod": {
                            "start": event.occurred_at.isoformat(),
                            "end": event.occurred_at.isoformat(),
                        },
                    }
                }
            )

    resource = {
        "resourceType": "CarePlan",
        "id": str(episode.pk),
        "identifier": [{"system": "urn:commonpath:episode", "value": str(episode.pk)}],
        "instantiatesCanonical": [f"{plan_url}|{version.number}"],
        "status": STATUS[episode.status],
        "intent": "plan",
        "title": f"{version.pathway.name} (version {version.number})",
        "subject": {"identifier": {"system": "urn:commonpath:patient-ref", "value": episode.patient_ref}},
        "period": {"start": episode.started_at.isoformat()},
        "created": episode.created_at.isoformat(),
        "activity": activities,
    }
    if episode.ended_at:
        resource["period"]["end"] = episode.ended_at.isoformat()
    return resource


class CarePlanView(FhirMixin, ApiMixin, generics.GenericAPIView):
    """An episode as a FHIR R4 CarePlan with its activities and their status (application/fhir+json)."""

    access_roles = EPISODE_ROLES

    @extend_schema(
        parameters=[FHIR_FORMAT],
        responses={(200, "application/fhir+json"): OpenApiResponse(OpenApiTypes.OBJECT, "FHIR R4 CarePlan")},
    )
    def get(self, request, pk: int):
        scope = (
            episode_scope(request.user)
            .select_related("version__pathway")
            .prefetch_related("version__steps", "events", "variances__reason")
        )
        episode = object_in_scope_or_404(scope, label="episode", pk=pk)
        audit_episode_read(episode, via="fhir CarePlan")
        url = plan_definition_url(request, episode.version.pathway.code)
        return Response(care_plan(episode, plan_url=url))
