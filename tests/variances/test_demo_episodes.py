"""The demo's episodes: realistic proportions, an inbox and a review queue to show, idempotent."""

import io

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from demo import episodes as demo_episodes
from demo import org as demo_org
from demo import pathways as demo_pathways
from pathways.models import PathwayChange, PathwayVersion
from variances.models import Episode, EventQuantity, ReasonCode, StepEvent, Variance, VarianceRevision
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


@pytest.mark.slow
def test_explanations_fit_the_step_and_some_items_cost_more_than_the_standard_rate(demo):
    load(demo)
    demo_variances = Variance.objects.filter(episode__patient_ref__startswith="DEMO-").select_related("step")

    # A late pre-operative assessment is not waiting for a discharge care package.
    early_steps = demo_variances.filter(
        variance_type__in=["delay", "early"], step__step_type__in=["assessment", "procedure", "investigation"]
    )
    texts = set(early_steps.exclude(rationale="").values_list("rationale", flat=True))
    assert texts and not any(w in t.lower() for t in texts for w in ("discharge", "physio", "care package")), texts
    assert not early_steps.filter(reason__code="awaiting-care-package").exists()
    assert not demo_variances.filter(variance_type="exit", rationale__icontains="theatre coordinator").exists()
    amended = demo_variances.filter(rationale__endswith="Confirmed with the theatre coordinator.")
    assert [(v.variance_type, v.step.step_type) for v in amended] == [("delay", "procedure")]

    # Dearer items: a price variance finance can see, some explained as a substitution, some not.
    dearer = EventQuantity.objects.filter(event__episode__patient_ref__startswith="DEMO-", unit_cost__isnull=False)
    surgeries = StepEvent.objects.filter(episode__patient_ref__startswith="DEMO-", step__code="SURGERY")
    operated = surgeries.values("episode_id").distinct().count()
    implants = dearer.filter(resource__code__in=["IMPLANT", "HIP-IMPLANT"])
    assert 0.05 <= implants.count() / operated <= 0.35, (implants.count(), operated)
    assert dearer.filter(resource__code="CONSUMABLES").exists()
    standard = {"IMPLANT": 2000, "HIP-IMPLANT": 720, "CONSUMABLES": 300}
    assert all(q.unit_cost > standard[q.resource.code] for q in dearer.select_related("resource"))
    substitutions = demo_variances.filter(variance_type="substitution", resource__code__in=["IMPLANT", "HIP-IMPLANT"])
    explained = {(v.episode_id, v.resource_id) for v in substitutions}
    priced = {(q.event.episode_id, q.resource_id) for q in implants.select_related("event")}
    assert explained and explained < priced  # every substitution explains a dearer implant; not every one is


def test_demo_versions_were_published_before_their_episodes_not_when_the_demo_loaded(demo):
    hip = {v.number: v for v in PathwayVersion.objects.filter(pathway__code="HIP-FRACTURE")}
    tkr = PathwayVersion.objects.get(pathway__code="TKR", number=1)
    today = timezone.localdate()

    for first in (hip[1], tkr):
        assert timezone.localdate(first.published_at) < first.effective_from  # agreed, then in effect
    assert hip[1].retired_at == hip[2].published_at  # replaced the moment v2 was published
    assert timezone.localdate(hip[2].published_at) == hip[2].effective_from < today
    assert timezone.localdate(hip[1].retired_at) < today
    history = {c.action: c.at for c in PathwayChange.objects.filter(version=hip[1], action__in=["publish", "retire"])}
    assert history == {"publish": hip[1].published_at, "retire": hip[1].retired_at}
