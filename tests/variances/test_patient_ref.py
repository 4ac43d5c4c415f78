"""Patients are identified by a pseudonymous reference only, and the product says why not."""

import pytest
from django.core.exceptions import ValidationError

from tests.conftest import login
from tests.variances.conftest import T0
from variances import services
from variances.models import Episode, validate_patient_ref


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("John Smith", "looks like a person's name"),
        ("jane.doe@nhs.net", "looks like an email address"),
        ("943 476 5919", "10-digit NHS number"),
        ("9434765919", "10-digit NHS number"),
        ("SMITH", "needs at least one digit"),
        ("pt 7f3k", "looks like a person's name"),
        ("PT_7F3K2Q!", "capital letters, digits and hyphens"),
    ],
)
def test_it_rejects_identifying_references_and_says_why(value, why):
    with pytest.raises(ValidationError) as exc:
        validate_patient_ref(value)
    assert why in exc.value.messages[0]


@pytest.mark.parametrize("value", ["PT-7F3K2Q", "RCH-000123", "A1B2"])
def test_it_accepts_pseudonymous_references(value):
    validate_patient_ref(value)


def test_starting_an_episode_with_an_nhs_number_is_refused_with_the_reason(knee, org, alice, clock):
    with pytest.raises(ValidationError) as exc:
        services.episode_start(
            pathway_version=knee,
            patient_ref="943 476 5919",
            org_unit=org["ORTHO"],
            responsible_clinician=alice,
            started_at=T0,
            actor=alice,
        )
    assert "NHS number" in exc.value.message_dict["patient_ref"][0]
    assert not Episode.objects.exists()


def test_the_start_form_shows_the_reason_next_to_the_field_and_keeps_the_input(client, knee, org, alice, clock):
    login(client, alice)
    response = client.post(
        "/variances/episodes/new/",
        {
            "pathway": knee.pathway_id,
            "patient_ref": "Mary Jones",
            "org_unit": org["ORTHO"].pk,
            "responsible_clinician": alice.pk,
            "started_at": "2026-03-02T08:00",
        },
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_patient_ref_error"' in page
    assert "looks like a person&#x27;s name" in page
    assert 'value="Mary Jones"' in page
    assert not Episode.objects.exists()
