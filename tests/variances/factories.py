"""A small published pathway built with the ORM, and helpers to start episodes on it.

KNEE (a short elective knee pathway), all windows in minutes after the anchor:

| code      | anchor  | window      | mandatory | criticality | must follow |
|-----------|---------|-------------|-----------|-------------|-------------|
| ASSESS    | start   | 0 .. 240    | yes       | 3           |             |
| SURGERY   | start   | 60 .. 1440  | yes       | 5           | ASSESS      |
| MOBILISE  | SURGERY | 0 .. 1440   | yes       | 4           | SURGERY     |
| XRAY      | SURGERY | 0 .. 2880   | no        | 1           |             |
| STAY      | start   | (per day)   | yes       | 1           |             |
| DISCHARGE | start   | 2880 .. 5760| yes       | 2           | MOBILISE    |
"""

from datetime import timedelta

from django.utils import timezone

from pathways.models import Pathway, PathwayVersion, Resource, Stage, Step
from variances import services
from variances.models import ReasonCode
from variances.reasons import seed_base_reasons

STEPS = [
    # code, name, type, anchor, min, max, mandatory, criticality, must_follow, per_day
    ("ASSESS", "Pre-operative assessment", "assessment", None, 0, 240, True, 3, [], False),
    ("SURGERY", "Total knee replacement", "procedure", None, 60, 1440, True, 5, ["ASSESS"], False),
    ("MOBILISE", "Mobilise on day of surgery", "therapy", "SURGERY", 0, 1440, True, 4, ["SURGERY"], False),
    ("XRAY", "Post-operative X-ray", "investigation", "SURGERY", 0, 2880, False, 1, [], False),
    ("STAY", "Ward stay", "stay", None, None, None, True, 1, [], True),
    ("DISCHARGE", "Discharge home", "discharge", None, 2880, 5760, True, 2, ["MOBILISE"], False),
]


def build_pathway(org_unit, *, code="KNEE", publish=True, user=None) -> PathwayVersion:
    pathway = Pathway.objects.create(code=code, name=f"{code} test pathway", owner_unit=org_unit)
    version = PathwayVersion.objects.create(pathway=pathway, number=1, created_by=user)
    stage = Stage.objects.create(version=version, order=1, name="Stay")
    by_code = {}
    for order, (scode, name, stype, anchor, wmin, wmax, mandatory, crit, follows, per_day) in enumerate(STEPS):
        step = Step.objects.create(
            version=version,
            stage=stage,
            order=order,
            code=scode,
            name=name,
            step_type=stype,
            anchor=by_code.get(anchor),
            window_min_minutes=wmin,
            window_max_minutes=wmax,
            mandatory=mandatory,
            criticality=crit,
            per_day=per_day,
        )
        step.must_follow.set([by_code[f] for f in follows])
        by_code[scode] = step
    if publish:
        version.status = PathwayVersion.Status.PUBLISHED
        version.published_at = timezone.now()
        version.published_by = user
        version.save()
    return version


def step(version, code) -> Step:
    return version.steps.get(code=code)


def reason(code="service-not-available") -> ReasonCode:
    seed_base_reasons(ReasonCode)  # a transactional test's flush empties the seeded table
    return ReasonCode.objects.get(code=code, pathway__isnull=True)


def resource(code="PHYSIO-MIN") -> Resource:
    return Resource.objects.get_or_create(
        code=code, defaults={"name": "Physiotherapist time", "kind": Resource.Kind.STAFF, "unit": Resource.Unit.MINUTE}
    )[0]


def start(version, unit, clinician, *, ref="PT-0001A", started_at=None, actor=None):
    return services.episode_start(
        pathway_version=version,
        patient_ref=ref,
        org_unit=unit,
        responsible_clinician=clinician,
        started_at=started_at or timezone.now() - timedelta(hours=1),
        actor=actor or clinician,
    )


def event(episode, code=None, *, at, activity="", actor=None, source="manual", external_id=""):
    return services.event_record(
        episode=episode,
        step=step(episode.version, code) if code else None,
        activity=activity,
        occurred_at=at,
        source=source,
        external_id=external_id,
        actor=actor,
    )


def routine_delay(episode, actor, *, at):
    """A documented delay of the assessment, for lack of time: a routine departure for review and amendment."""
    return services.variance_record(
        episode=episode,
        step=step(episode.version, "ASSESS"),
        variance_type="delay",
        cause="system",
        reason=reason("limited-time"),
        valence="negative",
        occurred_at=at,
        actor=actor,
    )
