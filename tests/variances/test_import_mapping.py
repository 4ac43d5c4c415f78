"""Mapping files: validated with every problem listed, then checked against the pathway."""

import json

import pytest

from demo import sepsis
from tests.variances.importing import MAPPING_DOC, mapping, sepsis_version
from variances.importers import MappingError, load_mapping, parse_mapping
from variances.importers.loader import resolve


def problems_of(document) -> list[str]:
    with pytest.raises(MappingError) as caught:
        parse_mapping(document, name="m.json")
    return caught.value.problems


def test_the_shipped_sepsis_mapping_is_valid_and_maps_every_activity_of_the_log():
    m = load_mapping(sepsis.MAPPING_PATH)

    assert (m.source, m.pathway, m.patient_ref_prefix) == ("4tu-sepsis-cases", "SEPSIS-ED", "SX")
    assert m.steps["CRP"].step_code == m.steps["Leucocytes"].step_code == "BLOODS"
    assert {m.steps[f"Release {x}"].step_code for x in "ABCDE"} == {"DISCHARGE"}
    assert {m.steps["Admission NC"].step_code, m.steps["Admission IC"].step_code} == {"ADMISSION"}
    assert m.outcomes == {"Return ER": "readmitted_30d"}
    assert len(m.steps) + len(m.outcomes) == 16  # the 16 activities of the 4TU log


def test_every_problem_is_reported_at_once():
    found = problems_of(
        {
            "source": "Hospital X",
            "patient_ref_prefix": "sx",
            "steps": {"ER Triage": "er triage", "CRP": {"step": "BLOODS", "quantities": {"PATH04": "-1"}}},
            "outcomes": {"Return ER": "readmission", "ER Triage": "complication"},
            "ignore": "Billing",
            "stepz": {},
        }
    )

    assert found == [
        "unknown key 'stepz' (the keys a mapping may have: format, source, pathway, patient_ref_prefix, "
        "description, steps, outcomes, ignore, lifecycle, cost_resource)",
        "'source' must name the system the data comes from: 1-60 characters a-z, 0-9, '.', '_' or '-' "
        '(e.g. "4tu-sepsis-cases")',
        "'patient_ref_prefix' must be 1-6 capital letters or digits, starting with a letter (e.g. SX)",
        "steps['ER Triage']: 'er triage' is not a step code (capital letters, digits and hyphens, e.g. BLOODS)",
        "steps['CRP']: the quantity of PATH04 must be zero or more",
        "outcomes['Return ER']: 'readmission' is not an outcome CommonPath records "
        "(use one of: readmitted_30d, complication)",
        "'ignore' must be a list of activity names",
    ]


def test_an_activity_may_be_in_one_section_only():
    found = problems_of({"source": "x", "steps": {"CRP": "BLOODS"}, "ignore": ["CRP"]})

    assert found == ["the activity 'CRP' is listed in both 'steps' and 'ignore'"]


def test_steps_are_required():
    assert problems_of({"source": "x"}) == ["'steps' is missing: map at least one source activity to a step code"]


def test_broken_json_says_where(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{\n  "source": "x",\n  "steps": {"A": "B",}\n}', encoding="utf-8")

    with pytest.raises(MappingError) as caught:
        load_mapping(path)

    assert str(caught.value).startswith("The mapping m.json cannot be used:\n  - it is not valid JSON:")
    assert "at line 3, column" in caught.value.problems[0]


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(MappingError, match="there is no file"):
        load_mapping(tmp_path / "nope.json")


@pytest.mark.django_db
def test_it_is_checked_against_the_published_version_of_the_pathway(org):
    sepsis_version(org)
    document = json.loads(json.dumps(MAPPING_DOC))
    document["steps"]["IV Antibiotics"] = "ANTIBIOTICS"
    document["steps"]["Admission IC"] = {"step": "ADMISSION", "quantities": {"ICU-DAY": "1"}}
    document["cost_resource"] = "NO-SUCH"

    with pytest.raises(MappingError) as caught:
        resolve(parse_mapping(document, name="m.json"), pathway_code="SEPSIS-ED")

    assert caught.value.problems[0].startswith("steps['IV Antibiotics']: ANTIBIOTICS is not a step of SEPSIS-ED v1")
    assert caught.value.problems[1:] == [
        "there is no resource with the code ICU-DAY",
        "there is no resource with the code NO-SUCH",
    ]


@pytest.mark.django_db
def test_a_mapping_written_for_another_pathway_is_refused(org):
    sepsis_version(org)
    from tests.variances.factories import build_pathway

    build_pathway(org["ORTHO"])

    with pytest.raises(MappingError) as caught:
        resolve(mapping(), pathway_code="KNEE")

    assert caught.value.problems[0] == "it was written for the pathway SEPSIS-ED, not KNEE"
