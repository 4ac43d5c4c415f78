"""The import result page says, row by row, what a rates file did: which fields it changed, and which rows it left as they were."""

import re
from html import unescape

from django.core.files.uploadedfile import SimpleUploadedFile

from costing.models import CostRate
from costing.rates import cost_rate_set
from tests.conftest import login

NCC = (
    "Service Code,Dept or Currency Code,Dept or Currency Desc,Activity,Unit cost,Cost\n"
    'Emergency Care,VB09Z ," Emergency Medicine, Category 1 Investigation with Category 1-2 Treatment",4979457,177.0078,881402518.6\n'
    'Critical care,XC06Z ," Adult Critical Care, 1 Organ Supported",488918,1737.829,849655888.7\n'
)
NATIONAL = "NHS National Cost Collection 2023/24 national schedule: Critical care, XC06Z"
LOCAL_NOTE = "NCC 2023/24 XC06Z: confirm against the trust's own ECDS grouping"


def _import(client, data: str, fmt: str = "ncc") -> str:
    post = {"format": fmt, "file": SimpleUploadedFile(f"{fmt}.csv", data.encode(), "text/csv")}
    if fmt == "ncc":
        post["financial_year"] = 2023
    response = client.post("/costing/rates/import/", post)
    assert response.status_code == 200
    return response.content.decode()


def _section(html: str, heading_id: str) -> str:
    match = re.search(rf'<section[^>]*aria-labelledby="{heading_id}".*?</section>', html, re.S)
    assert match, f"no section {heading_id}"
    return match.group(0)


def _rows(html: str) -> list[list[str]]:
    """The text of each body row's cells, as a reader sees them."""
    body = re.search(r"<tbody>(.*?)</tbody>", html, re.S).group(1)
    return [
        [
            " ".join(unescape(re.sub(r"<[^>]+>", " ", cell)).split())
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def _summary(html: str) -> dict[str, str]:
    table = re.search(r'<table class="import-summary">.*?</table>', html, re.S).group(0)
    return dict(_rows(table))


def test_it_shows_a_changed_figure_with_was_and_now_to_the_same_places(client, fred):
    login(client, fred)
    _import(client, NCC)

    html = _import(client, NCC.replace("177.0078", "180.5"))

    assert _rows(_section(html, "updated-h")) == [["2", "NCC-VB09Z-EC", "FY 2023/24", "Rate", "£177.0078", "£180.5000"]]
    assert _summary(html)["… the rate itself"] == "1"
    assert "177.007800" not in html


def test_it_says_when_only_the_source_changed_and_that_the_files_text_replaced_a_local_note(client, fred):
    login(client, fred)
    _import(client, NCC)
    rate = CostRate.objects.get(resource__code="NCC-XC06Z-CC", financial_year=2023)
    cost_rate_set(
        resource=rate.resource, financial_year=2023, rate=rate.rate, source=LOCAL_NOTE, includes=rate.includes
    )

    html = _import(client, NCC)

    updated = _section(html, "updated-h")
    assert _rows(updated) == [
        ["3", "NCC-XC06Z-CC rate unchanged, £1,737.829", "FY 2023/24", "Source", LOCAL_NOTE, NATIONAL]
    ]
    assert "replace the rate's, even where the figure is the same and even a note written here" in updated
    summary = _summary(html)
    assert (summary["Updated rates"], summary["… the rate itself"], summary["… only its source or other details"]) == (
        "1",
        "0",
        "1",
    )
    assert "1737.829000" not in html


def test_it_lists_unchanged_rows_with_their_lines(client, fred):
    login(client, fred)
    rates = (
        "resource_code,financial_year,rate,source,resource_name,kind,unit\n"
        "THEATRE,2025/26,4.50,Theatre budget 2025/26,Theatre,room,minute\n"
        "BED-DAY,2025,180,Ward budget 2025/26,Bed-day,bed_day,day\n"
    )
    _import(client, rates, fmt="csv")

    html = _import(client, rates, fmt="csv")

    unchanged = _section(html, "unchanged-h")
    assert "<details open>" in unchanged
    assert "2 rows already as the file says: nothing written" in unchanged
    assert _rows(unchanged) == [
        ["2", "THEATRE", "FY 2025/26", "£4.50"],
        ["3", "BED-DAY", "FY 2025/26", "£180.00"],
    ]


def test_many_unchanged_rows_are_listed_folded_away(client, fred):
    login(client, fred)
    rates = "resource_code,financial_year,rate,source,resource_name,kind,unit\n" + "".join(
        f"R{n:02},2025,{n},Budget,Resource {n},staff,minute\n" for n in range(1, 22)
    )
    _import(client, rates, fmt="csv")

    html = _import(client, rates, fmt="csv")

    unchanged = _section(html, "unchanged-h")
    assert "<details>" in unchanged
    listed = _rows(unchanged)
    assert len(listed) == 21
    assert listed[-1] == ["22", "R21", "FY 2025/26", "£21.00"]


def test_every_new_rate_is_listed_folded_away_when_there_are_many(client, fred):
    login(client, fred)
    rates = "resource_code,financial_year,rate,source,resource_name,kind,unit\n" + "".join(
        f"R{n:03},2025,{n},Budget,Resource {n},staff,minute\n" for n in range(1, 202)
    )

    created = _section(_import(client, rates, fmt="csv"), "created-h")

    assert "<details>" in created and "201 rates created" in created
    listed = _rows(created)
    assert len(listed) == 201  # every row, as the page promises: none cut off at 200
    assert listed[-1] == ["202", "R201", "FY 2025/26", "£201.00"]
