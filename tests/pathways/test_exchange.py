"""JSON export/import of a version round-trips exactly, apart from ids."""

import json

import pytest
from django.core.exceptions import ValidationError

from pathways.exchange import FORMAT, version_export, version_import
from pathways.models import Pathway, Resource
from tests.pathways.builders import build_fracture


def test_it_round_trips_a_version_through_json(org, bob, tkr):
    fracture = build_fracture(org["ORTHO"], bob)
    for version in (tkr["version"], fracture):
        exported = json.loads(json.dumps(version_export(version)))
        copy = version_import(document=exported, owner_unit=org["ED"], actor=bob, code=f"{version.pathway.code}-COPY")

        again = version_export(copy)

        assert again["pathway"].pop("code") == f"{version.pathway.code}-COPY"
        exported["pathway"].pop("code")
        assert again == exported
        assert copy.status == "draft"
        assert copy.pathway.owner_unit == org["ED"]


def test_the_export_holds_the_plan_by_code(org, bob):
    document = version_export(build_fracture(org["ORTHO"], bob))

    assert document["format"] == FORMAT
    steps = {s["code"]: s for stage in document["stages"] for s in stage["steps"]}
    assert steps["MOBILISE"]["anchor"] == "SURGERY"
    assert steps["MOBILISE"]["must_follow"] == ["SURGERY"]
    assert steps["SURGERY"]["window_max_minutes"] == 2160
    assert not [key for key in _keys(document) if key == "id" or key.endswith("_id")]


def _keys(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def test_it_creates_missing_resources_and_refuses_a_unit_clash(org, bob, tkr):
    document = version_export(tkr["version"])
    document["resources"].append({"code": "NEW-KIT", "name": "New kit", "kind": "equipment", "unit": "item"})
    document["stages"][0]["steps"][0]["resources"].append({"resource": "NEW-KIT", "quantity": "1", "headcount": 1})

    version_import(document=document, owner_unit=org["ORTHO"], actor=bob, code="TKR-B")

    assert Resource.objects.get(code="NEW-KIT").unit == "item"
    document["resources"][0]["unit"] = "item"  # BED-DAY is planned in days here
    with pytest.raises(ValidationError, match="BED-DAY is planned in item"):
        version_import(document=document, owner_unit=org["ORTHO"], actor=bob, code="TKR-C")
    assert not Pathway.objects.filter(code="TKR-C").exists()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="something-else"), "not a CommonPath pathway document"),
        (lambda d: d["stages"][2]["steps"][0].update(anchor="NOPE"), "its anchor NOPE is not a step"),
        (lambda d: d["stages"][2]["steps"][0].update(must_follow=["NOPE"]), "must follow NOPE"),
        (lambda d: d["stages"][0]["steps"][0].update(expected_count="lots"), "'lots' is not a number"),
        (lambda d: d["stages"][0]["steps"][0]["resources"].append({"resource": "GHOST", "quantity": "1"}), "GHOST"),
        (lambda d: d["stages"][1]["steps"][0].update(code="PREOP"), "appears twice"),
    ],
)
def test_it_refuses_a_broken_document_and_creates_nothing(org, bob, tkr, mutate, message):
    document = version_export(tkr["version"])
    mutate(document)

    with pytest.raises(ValidationError, match=message):
        version_import(document=document, owner_unit=org["ORTHO"], actor=bob, code="TKR-X")

    assert not Pathway.objects.filter(code="TKR-X").exists()
