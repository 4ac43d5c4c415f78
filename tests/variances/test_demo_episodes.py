"""The demo's episodes: realistic proportions, an inbox and a review queue to show, idempotent."""

import io

import pytest

from accounts.models import AuditEvent
from demo import episodes as demo_episodes
from demo import org as demo_org
from demo import pathways as demo_pathways
from variances.models import Episode, ReasonCode, StepEvent, Variance, VarianceRevision
from variances.selectors import review_queue_for, unexplained_for


@pytest.fixture
def demo(db):
    """The demo trust with helper-built TKR and HIP-FRACTURE pathways, as load_demo has them."""
    units = demo_org.load_org()
    users = {u.username: u for u in demo_org.load_users(units)}
    demo_pathways.load(units=units, users=users, stdout=io.StringIO())
    return units, users


def load(demo) -> str:
    units, users = demo
    out = io.StringIO()
    demo_episodes.load(units=units, users=users, stdout=out)
    return out.getvalue()


@pytest.mark.slow
def test_it_loads_18_months_with_a_third_departing_and_work_waiting(demo):
    _units, users = demo
    message = load(demo)

    episodes = Episode.objects.filter(patient_ref__startswith="DEMO-")
    assert episodes.count() == 200
    departing = episodes.filter(variances__isnull=False).distinct().count()
    assert 0.25 <= departing / 200 <= 0.5, departing
    assert episodes.filter(status="active").exists() and episodes.filter(status="exited").exists()
    assert unexplained_for(users["clinician"]).count() == 6
    assert episodes.filter(status="active", responsible_clinician=users["clinician"]).exists()
    assert episodes.filter(version__status="retired").exists()  # older hip fractures stay on v1
    assert review_queue_for(users["lead"]).filter(review_required=True).count() == 5
    assert Variance.objects.filter(status="reviewed").exists()
    # A second pair of eyes: nobody reviewed what they documented; the lead's own went to a colleague.
    for variance in Variance.objects.filter(status="reviewed").prefetch_related("revisions"):
        documented = next(r for r in variance.revisions.all() if r.number == variance.revision - 1)
        assert documented.changed_by_id != variance.reviewed_by_id
    assert Variance.objects.filter(status="reviewed", reviewed_by__username="lead-colleague").exists()
    assert Variance.objects.filter(status="withdrawn", withdrawn_reason="Recorded on the wrong patient").exists()
    assert ReasonCode.objects.filter(code="no-trauma-theatre", pathway__code="HIP-FRACTURE").exists()
    # Every variance carries its history, newest revision equal to its state.
    assert VarianceRevision.objects.count() >= Variance.objects.count()
    assert "200 on TKR and HIP-FRACTURE" in message
    # An omission is explained in terms of the step omitted: no surgery "declined physiotherapy".
    omitted = Variance.objects.filter(variance_type="omission", step__step_type__in=["procedure", "medication"])
    rationales = set(omitted.exclude(rationale="").values_list("rationale", flat=True))
    assert rationales and not any(w in r.lower() for r in rationales for w in ("physio", "mobilis")), rationales


@pytest.mark.slow
def test_a_second_load_changes_nothing(demo):
    load(demo)
    counts = (Episode.objects.count(), StepEvent.objects.count(), Variance.objects.count(), AuditEvent.objects.count())

    assert load(demo) == "Demo episodes already loaded."
    assert counts == (
        Episode.objects.count(),
        StepEvent.objects.count(),
        Variance.objects.count(),
        AuditEvent.objects.count(),
    )


def test_it_waits_for_the_demo_pathways(db):
    units = demo_org.load_org()
    users = {u.username: u for u in demo_org.load_users(units)}
    out = io.StringIO()
    demo_episodes.load(units=units, users=users, stdout=out)
    assert "no published pathway HIP-FRACTURE, TKR" in out.getvalue()
    assert not Episode.objects.exists()
