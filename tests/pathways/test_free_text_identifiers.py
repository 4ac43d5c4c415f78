"""Change notes are shown to everyone who uses the pathway: they hold no NHS numbers or e-mail addresses."""

import pytest
from django.core.exceptions import ValidationError
from django.utils.html import escape

from accounts.privacy import EMAIL_FOUND, NHS_NUMBER_FOUND
from pathways import services
from pathways.models import PathwayChange, PathwayVersion
from tests.conftest import login

NHS_TEXT = "Changed after the case of 943 476 5919"


def test_the_publish_form_shows_the_error_by_the_note_and_keeps_it(client, tkr, bob):
    services.pathway_version_draft(pathway=tkr["pathway"], actor=bob)
    login(client, bob)

    html = client.post("/pathways/TKR/v2/publish/", {"note": NHS_TEXT}).content.decode()

    assert f'<p class="field-error" id="id_note_error">{escape(NHS_NUMBER_FOUND)}</p>' in html
    assert f"{NHS_TEXT}</textarea>" in html
    assert tkr["pathway"].versions.get(number=2).status == PathwayVersion.Status.DRAFT


def test_drafting_and_retiring_refuse_an_identifier_in_the_note(tkr, bob):
    changes = PathwayChange.objects.count()

    with pytest.raises(ValidationError) as drafting:
        services.pathway_version_draft(pathway=tkr["pathway"], actor=bob, note="Asked by j.bloggs@example.org")
    with pytest.raises(ValidationError) as retiring:
        services.pathway_version_retire(version=tkr["version"], actor=bob, note=NHS_TEXT)

    assert drafting.value.message_dict == {"note": [EMAIL_FOUND]}
    assert retiring.value.message_dict == {"note": [NHS_NUMBER_FOUND]}
    assert list(tkr["pathway"].versions.values_list("number", "status")) == [(1, "published")]
    assert PathwayChange.objects.count() == changes
