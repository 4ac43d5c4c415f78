"""The episode's and the variance's cost lens: the DOMAIN.md knee example, read in the browser.

The clinician who documents a departure sees what it cost, on the same page: one set
of numbers, two lenses. Only those who may open the episode see its cost.
"""

import re
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, Membership
from tests.conftest import login, make_user
from tests.costing.factories import active_knee_episode, at, knee_episode, reason, record_variance
from variances import services
from variances.detection import evaluate_episode
from variances.models import Variance

pytestmark = pytest.mark.django_db

Role = Membership.Role
LINES = "Where the variance comes from: adverse (U) first, then favourable (F), each largest first"


@pytest.fixture
def knee(org, alice):
    return knee_episode(org, alice)


def text(response) -> str:
    """The page's words, tags dropped and spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())).strip()


def rows(response, caption: str) -> list[str]:
    """The body rows of the table with ``caption``, each as its cells' words."""
    html = response.content.decode()
    table = re.search(rf"<caption[^>]*>{re.escape(caption)}</caption>(.*?)</table>", html, re.S)
    assert table, caption
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(1), re.S).group(1)
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        for row in re.findall(r"<tr\b[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_the_episode_cost_page_reproduces_the_knee_example(client, knee, alice):
    _tkr, episode = knee
    login(client, alice)

    response = client.get(reverse("costing:episode_cost", args=[episode.pk]))

    page = text(response)
    assert response.status_code == 200
    assert "Cost of PT-KNEE1" in page
    assert "Expected E £4,167.13" in page
    assert "Actual A £5,330.50" in page
    assert "Variance V £1,163.38 U" in page
    split = rows(response, "How the variance splits")
    assert split == [
        "Price / rate cash: paid more or less per unit than the standard rate £200.00 U",
        # Usage: 239.25 of surgery minutes + 28.125 of a third physio session.
        "Usage / efficiency more or less used than planned, at the standard rate £267.38 U",
        "Length of stay 5 nights against 3 expected £696.00 U",
    ]
    assert "System: £896.00 U" in page
    assert "Clinician / staff: £239.25 U" in page
    # The third physiotherapy session: a repeat, not a departure, so not among those waiting for a reason.
    assert "Repeated steps: £28.13 U" in page
    assert "No cause recorded:" not in page
    # Consultant 56.25 + theatre nurses 48.00 + ward nurse's two nights 336.00 + physiotherapist 28.125.
    assert (
        "Salaried staff time in these figures is capacity, not cash: £468.38 U of capacity consumed beyond the plan."
        in page
    )
    assert "rounded to the penny only for display" in page


def test_each_cost_line_names_the_record_that_explains_it_and_a_repeat_says_why_none_does(client, knee, alice):
    _tkr, episode = knee
    login(client, alice)

    lines = rows(
        client.get(reverse("costing:episode_cost", args=[episode.pk])),
        LINES,
    )

    assert lines[0] == ("Ward stay Ward bed-day Length of stay (cash) £360.00 U Delay · system cause · documented"), (
        lines
    )
    implant = next(line for line in lines if "Knee implant" in line)
    assert "Price / rate (cash) £200.00 U Substitution · system cause · documented" in implant
    theatre = next(line for line in lines if "Theatre (room and kit)" in line)
    assert "Usage / efficiency (cash) £135.00 U Override · clinician / staff cause · documented" in theatre
    consultant = next(line for line in lines if line.startswith("Total knee replacement Consultant surgeon"))
    assert "(capacity consumed) £56.25 U Override" in consultant
    physio = next(line for line in lines if line.startswith("Physiotherapy session"))
    assert physio.endswith("£28.13 U Repeated step: done 3×, planned 2 *"), physio
    assert len(lines) == 7, lines


def test_a_repeat_says_once_why_no_record_explains_it_and_a_record_on_the_step_then_does(client, knee, alice):
    tkr, episode = knee
    login(client, alice)
    url = reverse("costing:episode_cost", args=[episode.pk])

    response = client.get(url)

    record = reverse("variances:variance_record", args=[episode.pk]) + f"?step={tkr['PHYSIO'].pk}&amp;type=addition"
    assert text(response).count("A step done more often than planned is not a departure from the pathway") == 1
    assert "reports count what the repeat used under “Repeated steps”, not under “No cause recorded”" in text(response)
    causes = re.search(r"By cause (.*?) Where the variance", text(response)).group(1)
    assert causes == "System: £896.00 U Clinician / staff: £239.25 U Repeated steps: £28.13 U"
    assert f'<a href="{record}">record an addition on Physiotherapy session</a>' in response.content.decode()
    form = client.get(record.replace("&amp;", "&")).content.decode()
    ended = timezone.localtime(episode.ended_at).strftime("%Y-%m-%dT%H:%M")
    assert f'value="{ended}"' in form  # what happened on an ended episode happened before its end
    assert '<option value="addition" selected>' in form

    record_variance(
        episode,
        tkr["PHYSIO"],
        Variance.Type.OVERRIDE,
        cause=Variance.Cause.PATIENT,
        reason_code="prefers-alternative",
        rationale="Third session to regain flexion before discharge.",
        at=episode.started_at + timedelta(days=3),
        actor=alice,
    )
    response = client.get(url)

    physio = next(line for line in rows(response, LINES) if line.startswith("Physiotherapy session"))
    assert physio.endswith("£28.13 U Override · patient cause · documented"), physio
    assert "A step done more often than planned" not in text(response)
    causes = re.search(r"By cause (.*?) Where the variance", text(response)).group(1)
    assert causes == "System: £896.00 U Clinician / staff: £239.25 U Patient: £28.13 U"


def test_the_episode_page_loads_the_cost_lens_and_links_it_without_javascript(client, knee, alice):
    _tkr, episode = knee
    login(client, alice)
    url = reverse("costing:episode_cost", args=[episode.pk])

    page = client.get(reverse("variances:episode_detail", args=[episode.pk])).content.decode()
    fragment = client.get(url, HTTP_HX_REQUEST="true")

    assert f'hx-get="{url}" hx-trigger="load"' in page
    assert f'<a href="{url}">See what this episode cost against its pathway</a>' in page
    assert "<html" not in fragment.content.decode()
    assert "Variance V £1,163.38 U" in text(fragment)


def test_a_variance_shows_the_cost_it_explains(client, knee, alice):
    _tkr, episode = knee
    login(client, alice)
    substitution, override, delay = (
        episode.variances.get(variance_type=kind)
        for kind in (Variance.Type.SUBSTITUTION, Variance.Type.OVERRIDE, Variance.Type.DELAY)
    )

    def cost_of(variance):
        return client.get(reverse("costing:variance_cost", args=[variance.pk]))

    implant = text(cost_of(substitution))
    assert "This substitution explains £200.00 U of the episode's cost variance" in implant
    assert "Reports count it under the cause “System”: the organisation's, never charged to the clinician" in implant
    minutes = cost_of(override)
    assert "This override explains £239.25 U" in text(minutes)
    assert rows(minutes, "Cost lines this variance explains") == [
        "Total knee replacement Theatre (room and kit) Usage / efficiency (cash) £135.00 U",
        "Total knee replacement Consultant surgeon Usage / efficiency (capacity consumed) £56.25 U",
        "Total knee replacement Theatre nurse Usage / efficiency (capacity consumed) £48.00 U",
    ]
    assert "under the cause “Clinician / staff”." in text(minutes)
    assert "This delay explains £696.00 U" in text(cost_of(delay))
    page = client.get(reverse("variances:variance_detail", args=[delay.pk])).content.decode()
    assert f'hx-get="{reverse("costing:variance_cost", args=[delay.pk])}"' in page


def test_a_variance_with_no_cost_says_so(client, knee, alice):
    tkr, episode = knee
    login(client, alice)
    with time_machine.travel(at(2025, 7, 2), tick=False):
        early = record_variance(
            episode,
            tkr["PREOP"],
            Variance.Type.EARLY,
            cause=Variance.Cause.PATIENT,
            reason_code="prefers-alternative",
            rationale="Seen early at the patient's request.",
            at=episode.started_at + timedelta(minutes=30),
            actor=alice,
        )

    page = text(client.get(reverse("costing:variance_cost", args=[early.pk])))

    assert (
        "No cost is linked to this variance: a departure in timing (a delay, an early step, a step out of sequence) costs nothing by itself"
        in page
    )


def test_an_active_episode_lists_only_what_already_costs_more_than_planned(client, org, alice):
    tkr, episode = active_knee_episode(org, alice, surgery_minutes="120")
    services.event_record(
        episode=episode, step=tkr["PREOP"], occurred_at=at(2025, 6, 2, 9), source="manual", actor=alice
    )
    login(client, alice)
    with time_machine.travel(at(2025, 6, 3, 12), tick=False):
        response = client.get(reverse("costing:episode_cost", args=[episode.pk]))

    page = text(response)
    assert "What this episode has cost so far" in page
    # Pre-op 49.125, surgery 3,017.75 + 30 more theatre minutes at 4.50 (135.00), one night of the stay 348.00.
    assert "Actual A so far £3,549.88" in page
    assert "Variance V" not in page and "How the variance splits" not in page and " F " not in page
    assert rows(response, "Already above plan, largest first") == [
        "Total knee replacement Theatre (room and kit) Usage / efficiency (cash) £135.00 U No variance record · record why"
    ]


def test_an_active_episode_with_nothing_above_plan_says_so(client, org, alice):
    _tkr, episode = active_knee_episode(org, alice)
    login(client, alice)
    with time_machine.travel(at(2025, 6, 2, 12), tick=False):
        page = text(client.get(reverse("costing:episode_cost", args=[episode.pk])))

    assert "Actual A so far £0.00" in page
    assert "Nothing has cost more than planned so far." in page


def test_a_repeat_is_counted_against_the_planned_count_on_the_timeline_too(client, knee, alice):
    _tkr, episode = knee
    login(client, alice)

    page = text(client.get(reverse("variances:episode_detail", args=[episode.pk])))

    assert "done 3×, 1 more than planned: not a departure from the pathway" in page


def test_the_cost_of_an_amended_variance_follows_its_new_cause_and_a_withdrawn_one_has_none(client, knee, alice):
    _tkr, episode = knee
    login(client, alice)
    override = episode.variances.get(variance_type=Variance.Type.OVERRIDE)
    services.variance_amend(
        variance=override, changes={"cause": Variance.Cause.PATIENT}, reason="Cause was the anatomy", actor=alice
    )
    url = reverse("costing:variance_cost", args=[override.pk])

    amended = text(client.get(url))
    assert "This override explains £239.25 U" in amended
    assert "under the cause “Patient”." in amended

    override.refresh_from_db()
    services.variance_withdraw(variance=override, reason="Recorded on the wrong episode", actor=alice)
    assert "This variance was withdrawn, so no cost is linked to it." in text(client.get(url))
    # The surgery minutes it explained are not handed to the implant's substitution: no record explains them now.
    lines = rows(client.get(reverse("costing:episode_cost", args=[episode.pk])), LINES)
    theatre = next(line for line in lines if "Theatre (room and kit)" in line)
    assert theatre.endswith("£135.00 U No variance record · record why"), theatre


def test_an_adverse_line_no_record_explains_links_to_recording_why(client, knee, alice):
    tkr, episode = knee
    login(client, alice)
    delay = episode.variances.get(variance_type=Variance.Type.DELAY)
    services.variance_withdraw(variance=delay, reason="Recorded on the wrong episode", actor=alice)

    response = client.get(reverse("costing:episode_cost", args=[episode.pk]))

    stay = next(line for line in rows(response, LINES) if line.startswith("Ward stay Ward bed-day"))
    assert stay.endswith("£360.00 U No variance record · record why"), stay
    record = reverse("variances:variance_record", args=[episode.pk]) + f"?step={tkr['WARD-STAY'].pk}&amp;type=delay"
    assert f'<a href="{record}">record why</a>' in response.content.decode()
    form = client.get(record.replace("&amp;", "&")).content.decode()
    assert '<option value="delay" selected>' in form
    # A dearer item: the form opens on the resource it is about.
    for kind in (Variance.Type.SUBSTITUTION, Variance.Type.OVERRIDE):
        services.variance_withdraw(
            variance=episode.variances.get(variance_type=kind), reason="Recorded on the wrong episode", actor=alice
        )
    substitution = episode.variances.get(variance_type=Variance.Type.SUBSTITUTION)
    response = client.get(reverse("costing:episode_cost", args=[episode.pk]))
    implant = next(line for line in rows(response, LINES) if "Knee implant" in line)
    assert implant.endswith("£200.00 U No variance record · record why"), implant
    resource = substitution.resource or tkr["SURGERY"].planned_resources.get(resource__code="IMPLANT").resource
    record = reverse("variances:variance_record", args=[episode.pk])
    record += f"?step={tkr['SURGERY'].pk}&amp;resource={resource.pk}"
    assert f'<a href="{record}">record why</a>' in response.content.decode()
    form = client.get(record.replace("&amp;", "&")).content.decode()
    assert f'<option value="{resource.pk}" selected>{resource.name}</option>' in form
    # A favourable line is not asked about.
    assert text(response).count("record why") == sum("record why" in line for line in rows(response, LINES))
    assert not any("record why" in line and line.endswith(" F") for line in rows(response, LINES))


def test_while_active_a_variance_is_credited_only_with_what_already_costs_more(client, org, alice):
    tkr, episode = active_knee_episode(org, alice, surgery_minutes="120")
    with time_machine.travel(at(2025, 6, 3, 12), tick=False):
        variances = {
            kind: record_variance(
                episode,
                tkr[step],
                kind,
                cause=Variance.Cause.SYSTEM,
                reason_code="service-not-available",
                rationale=rationale,
                at=at(2025, 6, 2, 14),
                actor=alice,
            )
            for kind, step, rationale in (
                (Variance.Type.OVERRIDE, "SURGERY", "Theatre kit fault: 30 minutes more."),
                (Variance.Type.DELAY, "WARD-STAY", "Waiting for a bed."),
            )
        }
        login(client, alice)
        override = text(client.get(reverse("costing:variance_cost", args=[variances[Variance.Type.OVERRIDE].pk])))
        delay = text(client.get(reverse("costing:variance_cost", args=[variances[Variance.Type.DELAY].pk])))

    assert "This override explains £135.00 U of the episode's cost variance so far" in override
    # The stay so far is one night of three: no saving is credited to the delay.
    assert "No cost is linked to this variance: a departure in timing (a delay, an early step" in delay
    assert " F" not in delay


def test_an_activity_recorded_without_resources_is_named_as_not_costed(client, knee, alice):
    _tkr, episode = knee
    services.event_record(
        episode=episode,
        activity="Return to theatre",
        occurred_at=episode.started_at + timedelta(days=2),
        source="manual",
        actor=alice,
    )
    login(client, alice)

    page = text(client.get(reverse("costing:episode_cost", args=[episode.pk])))

    assert (
        "Not costed: Return to theatre (1 activity off the pathway) was recorded without the resources it used, "
        "so the actual cost leaves it out." in page
    )
    evaluate_episode(episode.pk)
    detected = episode.variances.get(variance_type=Variance.Type.ADDITION)
    variance_page = text(client.get(reverse("costing:variance_cost", args=[detected.pk])))
    assert "No cost is linked to this activity: it was recorded without the resources it used" in variance_page


def test_a_departure_recorded_in_the_browser_about_one_resource_takes_only_that_resources_cost(client, knee, alice):
    tkr, episode = knee
    login(client, alice)
    record = reverse("variances:variance_record", args=[episode.pk])
    form = client.get(f"{record}?step={tkr['SURGERY'].pk}").content.decode()
    assert "Resource it concerns" in form
    assert f'<option value="{tkr["THEATRE"].pk}">Theatre (room and kit)</option>' in form

    response = client.post(
        record,
        {
            "step": tkr["SURGERY"].pk,
            "resource": tkr["THEATRE"].pk,
            "variance_type": "override",
            "reason": reason("service-not-available").pk,
            "cause": "system",
            "valence": "negative",
            "rationale": "Laminar flow failed: the theatre was cleaned twice.",
            "occurred_at": "2025-06-02T12:00",
        },
    )

    assert response.status_code == 302, response.content.decode()
    theatre_record = episode.variances.get(resource=tkr["THEATRE"])
    lines = rows(client.get(reverse("costing:episode_cost", args=[episode.pk])), LINES)
    theatre = next(line for line in lines if "Theatre (room and kit)" in line)
    consultant = next(line for line in lines if "Consultant surgeon" in line)
    assert theatre.endswith("£135.00 U Override · system cause · documented"), theatre
    assert consultant.endswith("Override · clinician / staff cause · documented"), consultant
    page = text(client.get(reverse("variances:variance_detail", args=[theatre_record.pk])))
    assert "· Theatre (room and kit) · System cause" in page


def test_a_resource_must_belong_to_the_step_and_can_be_amended(client, knee, alice):
    tkr, episode = knee
    login(client, alice)
    record = reverse("variances:variance_record", args=[episode.pk])
    posted = {
        "step": tkr["SURGERY"].pk,
        "resource": tkr["BED-DAY"].pk,
        "variance_type": "override",
        "reason": reason("service-not-available").pk,
        "cause": "system",
        "valence": "negative",
        "rationale": "Kept in recovery overnight.",
        "occurred_at": "2025-06-02T12:00",
    }

    response = client.post(record, posted)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Ward bed-day is not planned on Total knee replacement and was not used there." in page
    assert "Kept in recovery overnight." in page  # what was typed is kept
    assert not episode.variances.filter(rationale="Kept in recovery overnight.").exists()

    substitution = episode.variances.get(variance_type=Variance.Type.SUBSTITUTION)
    amend = reverse("variances:variance_amend", args=[substitution.pk])
    form = client.get(amend).content.decode()
    assert f'<option value="{tkr["IMPLANT"].pk}" selected>' in form
    response = client.post(
        amend,
        {
            "variance_type": "substitution",
            "step": tkr["SURGERY"].pk,
            "resource": "",
            "reason": substitution.reason_id,
            "cause": "system",
            "valence": "neutral",
            "level": substitution.level,
            "rationale": substitution.rationale,
            "occurred_at": timezone.localtime(substitution.occurred_at).strftime("%Y-%m-%dT%H:%M"),
            "amend_reason": "The whole operation was affected, not only the implant.",
            "expected_revision": substitution.revision,
        },
    )
    assert response.status_code == 302, response.content.decode()
    substitution.refresh_from_db()
    assert substitution.resource is None
    # About the whole step now, it comes first on the step (recorded before the override) and takes
    # the operation's minutes as well as the implant: 200.00 + 239.25.
    assert "This substitution explains £439.25 U" in text(
        client.get(reverse("costing:variance_cost", args=[substitution.pk]))
    )


def test_the_cost_pages_only_answer_get(client, knee, alice):
    _tkr, episode = knee
    login(client, alice)
    variance = episode.variances.first()

    assert client.post(reverse("costing:episode_cost", args=[episode.pk])).status_code == 405
    assert client.post(reverse("costing:variance_cost", args=[variance.pk])).status_code == 405
    assert not AuditEvent.objects.filter(detail__via="cost").exists()


@pytest.fixture
def colleague(org):
    """Another clinician of the unit: she may open the episode, so she sees its cost (as its page)."""
    return make_user("ola", Role.CLINICIAN, org["ORTHO"], display_name="Dr Ola Nwosu")


@pytest.mark.parametrize(
    ("persona", "status"),
    [("bob", 200), ("erin", 200), ("colleague", 200), ("dora", 404), ("carol", 403), ("fred", 403), ("nobody", 403)],
)
def test_only_those_who_may_open_the_episode_see_its_cost(client, knee, request, persona, status):
    _tkr, episode = knee
    login(client, request.getfixturevalue(persona))
    variance = episode.variances.first()

    episode_response = client.get(reverse("costing:episode_cost", args=[episode.pk]))
    variance_response = client.get(reverse("costing:variance_cost", args=[variance.pk]))

    assert episode_response.status_code == status
    assert variance_response.status_code == status
    if status == 200:
        assert "Variance V £1,163.38 U" in text(episode_response)
    else:
        assert "1,163.38" not in episode_response.content.decode()
        assert "PT-KNEE1" not in variance_response.content.decode()


def test_signed_out_visitors_are_sent_to_sign_in(client, knee):
    _tkr, episode = knee
    response = client.get(reverse("costing:episode_cost", args=[episode.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_reading_an_episodes_or_a_variances_cost_is_in_the_audit_trail(client, knee, alice):
    _tkr, episode = knee
    login(client, alice)
    delay = episode.variances.get(variance_type=Variance.Type.DELAY)

    client.get(reverse("costing:episode_cost", args=[episode.pk]))
    client.get(reverse("costing:variance_cost", args=[delay.pk]), HTTP_HX_REQUEST="true")

    episode_read, variance_read = AuditEvent.objects.filter(actor=alice, detail__via="cost").order_by("pk")
    assert (episode_read.action, episode_read.episode_ref, episode_read.detail) == (
        "episode.read",
        "PT-KNEE1",
        {"via": "cost"},
    )
    assert (variance_read.action, variance_read.object_id, variance_read.detail) == (
        "variance.read",
        str(delay.pk),
        {"via": "cost", "episode": episode.pk},
    )
