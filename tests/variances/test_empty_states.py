"""Empty pages say why they are empty: what a filter hides, and where imports from the command line went."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse

from demo import sepsis
from tests.conftest import login
from tests.variances.conftest import T0
from tests.variances.factories import start
from tests.variances.importing import GOOD, POOR, sepsis_version, write_csv
from tests.variances.importing import T0 as LOG_T0
from variances import services

EPISODES = reverse("variances:episode_list")


def close(episode, alice, at):
    services.episode_close(episode=episode, ended_at=at, actor=alice)


@pytest.fixture
def no_active(knee, org, alice, clock):
    """Three completed episodes and one exited, none active."""
    clock.move_to(T0 + timedelta(days=3))
    for i in range(3):
        close(start(knee, org["ORTHO"], alice, ref=f"PT-010{i}A", started_at=T0), alice, T0 + timedelta(days=2))
    exited = start(knee, org["ORTHO"], alice, ref="PT-0200A", started_at=T0)
    services.episode_exit(episode=exited, ended_at=T0 + timedelta(hours=5), reason="Transferred", actor=alice)


def test_with_no_active_episodes_the_list_says_what_the_status_filter_hides(client, no_active, alice):
    login(client, alice)

    page = client.get(EPISODES).content.decode()

    assert "No active episodes." in page
    assert "3 completed episodes and 1 exited episode are hidden by the status filter." in page
    assert '<a href="?status=">Show all episodes</a>' in page
    assert "Episodes of your unit appear here once started" not in page
    shown = client.get(EPISODES + "?status=").content.decode()
    assert all(ref in shown for ref in ["PT-0100A", "PT-0101A", "PT-0102A", "PT-0200A"])


def test_the_show_all_link_keeps_the_other_filters(client, no_active, alice):
    login(client, alice)

    page = client.get(EPISODES + "?status=exited&q=pt-01&mine=1").content.decode()

    assert "No exited episodes match." in page
    assert "3 completed episodes are hidden by the status filter." in page
    assert '<a href="?status=&amp;q=PT-01&amp;mine=1">Show all episodes</a>' in page


def test_with_no_episodes_at_all_the_list_says_how_they_arrive(client, org, alice):
    login(client, alice)

    page = client.get(EPISODES).content.decode()

    assert "Episodes of your unit appear here once started, or imported" in page
    assert "hidden by the status filter" not in page


def test_the_imports_page_says_command_line_imports_are_not_listed(client, org, erin, tmp_path):
    sepsis_version(org)
    log = write_csv(tmp_path / "ed-export.csv", [("A", LOG_T0, GOOD), ("B", LOG_T0, POOR)])
    call_command(
        "import_events", str(log), pathway="SEPSIS-ED", mapping=str(sepsis.MAPPING_PATH), org_unit="ED",
        stdout=io.StringIO(),
    )  # fmt: skip
    login(client, erin)

    page = " ".join(client.get(reverse("variances:import_list")).content.decode().split())

    assert "No imports yet" not in page
    assert "No imports from this page yet." in page
    assert "Imports run on the server with <code>manage.py import_events</code> are not listed here" in page
    assert f'<a href="{EPISODES}?status=">Episodes</a>' in page
