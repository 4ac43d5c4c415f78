"""Small pathways built through the services, for tests that need anchors and must-follow links."""

from pathways import services
from pathways.models import PathwayVersion


def build_fracture(unit, actor, *, code="NOF", publish=True) -> PathwayVersion:
    """Admission -> surgery within 36 h (must follow assessment) -> mobilise within 24 h of surgery."""
    pathway = services.pathway_create(
        code=code, name="Hip fracture", specialty="Orthogeriatrics", owner_unit=unit, actor=actor
    )
    version = pathway.versions.get()
    admission = services.stage_add(version=version, name="Admission", actor=actor)
    theatre = services.stage_add(version=version, name="Theatre", actor=actor)
    assess = services.step_add(
        stage=admission,
        actor=actor,
        code="ASSESS",
        name="Orthogeriatric assessment",
        step_type="assessment",
        window_min_minutes=0,
        window_max_minutes=4320,
        criticality=4,
        evidence="NICE QS16 statement 3",
    )
    surgery = services.step_add(
        stage=theatre,
        actor=actor,
        code="SURGERY",
        name="Hip surgery",
        step_type="procedure",
        window_min_minutes=0,
        window_max_minutes=2160,
        criticality=5,
        must_follow=[assess],
    )
    services.step_add(
        stage=theatre,
        actor=actor,
        code="MOBILISE",
        name="Mobilise",
        step_type="therapy",
        anchor=surgery,
        window_min_minutes=0,
        window_max_minutes=1440,
        must_follow=[surgery],
    )
    if publish:
        version = services.pathway_version_publish(version=version, actor=actor, note="First version")
    return version
