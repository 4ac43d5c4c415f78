"""Recording an event's actual quantities and prices in the browser: DOMAIN.md's knee example, typed in.

The API always took ``quantities``; the browser form now does too, through the same service
(``services.event_record`` and its ``event_quantity_check``), so that a clinician can say
"surgery took 120 minutes and the implant cost £2,200" where it happened.
"""

import re

import pytest
import time_machine
from django.urls import reverse

from tests.conftest import login
from tests.costing.factories import active_knee_episode, at
from tests.costing.test_episode_cost_pages import rows, text
from variances import services
from variances.models import EventQuantity, StepEvent

pytestmark = pytest.mark.django_db

NOW = at(2025, 6, 7, 10)  # the knee episode started on 2 June at 08:00


def event_url(episode) -> str:
    return reverse("variances:event_record", args=[episode.pk])


def post_event(client, episode, step, when: str, quantities=()):
    """The event form as a browser sends it: the step, the time and its quantity rows (4 blank unless given)."""
    data = {"step": step.pk if step else "", "activity": "", "occurred_at": when, "performed_by": ""}
    rows_sent = list(quantities) + [{}] * max(0, 4 - len(quantities))
    data.update({"q-TOTAL_FORMS": len(rows_sent), "q-INITIAL_FORMS": 0, "q-MIN_NUM_FORMS": 0, "q-MAX_NUM_FORMS": 50})
    for i, row in enumerate(rows_sent):
        for name in ("resource", "quantity", "headcount", "unit_cost"):
            data[f"q-{i}-{name}"] = row.get(name, "")
    return client.post(event_url(episode), data)


@pytest.fixture
def knee(org, alice):
    return active_knee_episode(org, alice)


def test_it_records_the_knee_examples_surgery_and_the_cost_panel_shows_the_implants_price_variance(client, knee, alice):
    tkr, episode = knee
    login(client, alice)
    with time_machine.travel(NOW, tick=False):
        post_event(client, episode, tkr["PREOP"], "2025-06-02T08:30")
        response = post_event(
            client,
            episode,
            tkr["SURGERY"],
            "2025-06-02T12:00",
            [
                {"resource": tkr["THEATRE"].pk, "quantity": "120"},
                {"resource": tkr["CONSULTANT"].pk, "quantity": "120"},
                {"resource": tkr["THEATRE-NURSE"].pk, "quantity": "120"},  # headcount blank: the plan's two
                {"resource": tkr["IMPLANT"].pk, "quantity": "1", "unit_cost": "2200"},
                {},
            ],
        )
        for day in (3, 4, 5):
            post_event(client, episode, tkr["PHYSIO"], f"2025-06-0{day}T09:00")
        services.episode_close(episode=episode, ended_at=at(2025, 6, 7, 8), actor=alice)

        assert response.status_code == 302
        surgery = StepEvent.objects.get(episode=episode, step=tkr["SURGERY"])
        assert {
            (q.resource.code, q.quantity, q.headcount, q.unit_cost)
            for q in EventQuantity.objects.filter(event=surgery).select_related("resource")
        } == {
            ("THEATRE", 120, 1, None),
            ("CONSULTANT", 120, 1, None),
            ("THEATRE-NURSE", 120, 2, None),
            ("IMPLANT", 1, 1, 2200),
        }
        episode_page = text(client.get(reverse("variances:episode_detail", args=[episode.pk])))
        cost = client.get(reverse("costing:episode_cost", args=[episode.pk]))

    assert (
        "Actual: Theatre (room and kit) 120 min · Consultant surgeon 120 min · Theatre nurse 2 × 120 min · "
        "Knee implant (cemented total knee) 1 at £2,200.00 each" in episode_page
    )
    page = text(cost)
    assert "Expected E £4,167.13" in page
    assert "Actual A £5,330.50" in page
    assert "Variance V £1,163.38 U" in page
    assert rows(cost, "How the variance splits")[0] == (
        "Price / rate cash: paid more or less per unit than the standard rate £200.00 U"
    )


def test_choosing_a_step_suggests_its_planned_resources_as_rows(client, knee, alice):
    tkr, episode = knee
    login(client, alice)
    with time_machine.travel(NOW, tick=False):
        response = client.get(event_url(episode), {"step": tkr["SURGERY"].pk}, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="quantity-rows"')  # the fragment, not the page
    selected = re.findall(r'<option value="(\d+)" selected>', html)
    assert selected == [
        str(tkr[code].pk) for code in ("THEATRE", "CONSULTANT", "THEATRE-NURSE", "IMPLANT", "CONSUMABLES")
    ]
    assert 'name="q-2-headcount"' in html and 'placeholder="planned 2"' in html
    assert 'placeholder="planned 90"' in html
    assert 'name="q-6-resource"' in html and 'name="q-7-resource"' not in html  # two blank rows after the plan's five


def test_suggested_rows_left_without_figures_record_nothing(client, knee, alice):
    tkr, episode = knee
    login(client, alice)
    suggested = [{"resource": tkr[code].pk} for code in ("THEATRE", "CONSULTANT", "IMPLANT")]
    with time_machine.travel(NOW, tick=False):
        response = post_event(client, episode, tkr["SURGERY"], "2025-06-02T12:00", suggested)

    assert response.status_code == 302
    assert StepEvent.objects.filter(episode=episode, step=tkr["SURGERY"]).exists()
    assert not EventQuantity.objects.exists()


def test_bad_rows_keep_what_was_typed_and_say_whats_wrong_with_each(client, knee, alice):
    tkr, episode = knee
    login(client, alice)
    with time_machine.travel(NOW, tick=False):
        response = post_event(
            client,
            episode,
            tkr["SURGERY"],
            "2025-06-02T12:00",
            [
                {"resource": tkr["THEATRE"].pk, "quantity": "-5"},
                {"resource": tkr["IMPLANT"].pk, "unit_cost": "2200"},
                {"quantity": "30"},
                {"resource": tkr["THEATRE"].pk, "quantity": "120", "headcount": "0", "unit_cost": "4.5x"},
                {"resource": tkr["CONSULTANT"].pk, "quantity": "1.2345"},
            ],
        )

    html = response.content.decode()
    assert response.status_code == 200
    assert not StepEvent.objects.exists()

    def error(field):
        found = re.search(rf'<p class="field-error" id="id_q-{field}_error">([^<]*)</p>', html)
        return found.group(1) if found else None

    assert error("0-quantity") == "A quantity cannot be negative."
    assert error("1-quantity") == "Give the quantity used, in the resource&#x27;s unit."
    assert error("2-resource") == "Choose the resource these figures are for."
    assert error("3-resource") == "Theatre (room and kit) is in row 1 already: give each once."
    assert error("3-headcount") == "Give a headcount from 1 to 100."
    assert error("3-unit_cost") == "Enter a number."
    assert error("4-quantity") == "Ensure that there are no more than 3 decimal places."
    # What was typed is still there, and the summary above the form links to each problem.
    assert 'name="q-0-quantity" value="-5"' in html
    assert 'name="q-3-unit_cost" value="4.5x"' in html
    assert '<a href="#id_q-3-headcount">Quantities, row 4, Headcount: Give a headcount from 1 to 100.</a>' in html
    assert '<details class="quantities" open>' in html


def test_the_service_refuses_what_the_form_refuses(knee, alice):
    tkr, episode = knee
    with time_machine.travel(NOW, tick=False), pytest.raises(services.ValidationError) as raised:
        services.event_record(
            episode=episode,
            step=tkr["SURGERY"],
            occurred_at=at(2025, 6, 2, 12),
            source=StepEvent.Source.MANUAL,
            quantities=[{"resource": "IMPLANT", "quantity": "1", "unit_cost": "-2200"}],
            actor=alice,
        )

    assert raised.value.message_dict == {"quantities": ["IMPLANT: A price cannot be negative."]}
    assert not StepEvent.objects.exists()
