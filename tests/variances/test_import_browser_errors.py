"""What the import page says when something is wrong: an import stopped by problems, a bad mapping."""

import html
import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse

from tests.conftest import login
from tests.variances.factories import build_pathway
from tests.variances.importing import GOOD, T0, rows_for, sepsis_version, write_csv
from variances.models import Episode, ImportJob

pytestmark = pytest.mark.django_db

LIST = reverse("variances:import_list")


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def log_with_one_bad_case(path):
    """Three cases; B has an activity the mapping does not name, C a timestamp without a UTC offset."""
    rows = list(rows_for([("A", T0, GOOD), ("B", T0, [*GOOD, ("Consult Dietitian", 60)]), ("C", T0, GOOD)]))
    rows[-1][2] = (T0 + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S")
    return write_csv(path, None, rows=rows)


def import_in_browser(client, capture_on_commit, path, **fields) -> str:
    """Upload, run the queued task (on commit), then read the job's page as the admin does."""
    with open(path, "rb") as f, capture_on_commit(execute=True):
        response = client.post(LIST, {"upload": f, **fields})
    return html.unescape(client.get(response["Location"]).content.decode())


def import_one_bad_case(client, admin, org, tmp_path, capture_on_commit, **fields) -> str:
    """The Sepsis mapping onto ED, as the admin, of a log with one bad case among three."""
    sepsis = sepsis_version(org)
    path = log_with_one_bad_case(tmp_path / "ed-export.csv")
    login(client, admin)
    return import_in_browser(
        client,
        capture_on_commit,
        path,
        pathway=sepsis.pathway.pk,
        mapping="sepsis-4tu.json",
        org_unit=org["ED"].pk,
        **fields,
    )


def test_it_says_nothing_was_imported_without_counting_cases_as_imported_or_skipped(
    client, erin, org, tmp_path, django_capture_on_commit_callbacks
):
    page = import_one_bad_case(client, erin, org, tmp_path, django_capture_on_commit_callbacks)

    assert ImportJob.objects.get().status == "failed"
    assert not Episode.objects.exists()
    status = page.split('id="import-status"')[1]
    assert "The file has 1 problem, so nothing was imported." in status
    assert (
        "3 cases read; 1 case has problems, so nothing was imported "
        "(tick 'Skip cases with problems' to import the other 2)" in status
    )
    assert f"{3 * len(GOOD) + 1} read, none saved; 1 would be unplanned (additions)" in status
    assert "Activities not in the mapping (they would be imported as additions)" in status
    # Nothing reads as done: no cases imported or skipped, no episodes, no variances.
    assert "imported," not in status and "skipped for problems" not in status
    assert "Episodes" not in status and "Variances detected" not in status


def test_a_dry_run_stopped_by_problems_says_what_would_happen(
    client, erin, org, tmp_path, django_capture_on_commit_callbacks
):
    page = import_one_bad_case(client, erin, org, tmp_path, django_capture_on_commit_callbacks, dry_run="on")

    assert "Dry run: nothing was saved." in page
    assert "3 cases read; 1 case has problems, so nothing would be imported (tick" in page


def test_every_problem_of_an_uploaded_mapping_is_listed_at_once_under_its_name(client, erin, org, tmp_path):
    knee = build_pathway(org["ORTHO"])
    path = write_csv(tmp_path / "ortho.csv", [("A", T0, [("Pre-op clinic", 0)])])
    bad_map = tmp_path / "tkr_bad_map.json"
    bad_map.write_text(
        json.dumps(
            {
                "source": "ortho-pas",
                "pathway": "KNEE",
                "foo": 1,
                "steps": {"Pre-op clinic": "PREOPX", "Physio": "PHYSIOX", "Theatre": "SURGERY"},
                "cost_resource": "NO-SUCH-RESOURCE",
            }
        ),
        encoding="utf-8",
    )
    login(client, erin)

    with open(path, "rb") as f, open(bad_map, "rb") as m:
        response = client.post(
            LIST,
            {
                "upload": f,
                "mapping_file": m,
                "pathway": knee.pathway.pk,
                "org_unit": org["ORTHO"].pk,
                "closed": "on",
                "skip_bad": "on",
            },
        )

    assert response.status_code == 200 and not ImportJob.objects.exists()
    page = response.content.decode()
    summary = re.search(r'<div class="error-summary".*?</div>', page, re.S).group()
    steps = "ASSESS, DISCHARGE, MOBILISE, STAY, SURGERY, XRAY"
    assert '<a href="#id_mapping_file">The mapping tkr_bad_map.json cannot be used:</a>' in summary
    assert [html.unescape(li) for li in re.findall(r"<li>([^<]*)</li>", summary)] == [
        "unknown key 'foo' (the keys a mapping may have: format, source, pathway, patient_ref_prefix, "
        "description, steps, outcomes, ignore, lifecycle, cost_resource).",
        f"steps['Pre-op clinic']: PREOPX is not a step of KNEE v1 (its steps: {steps}).",
        f"steps['Physio']: PHYSIOX is not a step of KNEE v1 (its steps: {steps}).",
        "there is no resource with the code NO-SUCH-RESOURCE.",
    ]
    assert "Or upload a mapping (JSON):" not in page  # the field's label is not put before each problem
    assert page.count("cannot be used") == 1
    # The admin's other choices are kept for the next try.
    assert f'<option value="{knee.pathway.pk}" selected>' in page
    assert f'<option value="{org["ORTHO"].pk}" selected>' in page
    assert re.search(r'<input type="checkbox" name="closed"[^>]*checked', page)
    assert re.search(r'<input type="checkbox" name="skip_bad"[^>]*checked', page)


def test_a_mapping_that_is_not_json_says_so_alone(client, erin, org, tmp_path):
    sepsis = sepsis_version(org)
    path = write_csv(tmp_path / "ed.csv", [("A", T0, GOOD)])
    bad_map = tmp_path / "notes.json"
    bad_map.write_text("steps: CRP -> BLOODS", encoding="utf-8")
    login(client, erin)

    with open(path, "rb") as f, open(bad_map, "rb") as m:
        response = client.post(
            LIST, {"upload": f, "mapping_file": m, "pathway": sepsis.pathway.pk, "org_unit": org["ED"].pk}
        )

    summary = re.search(r'<div class="error-summary".*?</div>', response.content.decode(), re.S).group()
    assert (
        "The mapping notes.json cannot be used:</a><ul><li>it is not valid JSON: Expecting value at line 1" in summary
    )
