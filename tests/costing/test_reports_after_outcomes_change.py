"""A readmission recorded after discharge reaches the cost report's outcome figures the next time it runs.

The report reads per-episode summaries refreshed incrementally (costing/summaries.py): a summary is
recomputed only when its episode's ``updated_at`` moved on since. Here the clock stands still, so the
change and the summary it must make stale carry the same instant: the write must still count as later.
"""

from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from costing.models import EpisodeCost
from costing.reports import ReportParameters, cost_report
from tests.costing.factories import generate_dataset, two_pathways
from tests.costing.test_reports_figures import SCOPES, in_scope, rows_by_key
from variances import services
from variances.models import Episode, Variance

pytestmark = pytest.mark.django_db


def readmission_share(episodes: list[Episode], variance_type: str, side: str) -> str | None:
    """The outcome table's "Readmitted within 30 days" for one row, in plain Python from the episodes."""
    closed = [e for e in episodes if e.status != Episode.Status.ACTIVE]
    having = {
        v.episode_id
        for v in Variance.objects.current().filter(variance_type=variance_type, episode__in=closed).only("episode_id")
    }
    group = [e for e in closed if (e.pk in having) == (side == "with")]
    known = [e for e in group if e.readmitted_30d is not None]
    if not known:
        return None
    return str((Decimal(sum(e.readmitted_30d for e in known)) / len(known)).quantize(Decimal("0.0001")))


def test_a_readmission_recorded_after_discharge_changes_the_reports_readmission_figure(org, alice, bob):
    hip, gall = two_pathways(org["ORTHO"])
    generate_dataset(pathways=[hip, gall], units=[org["ORTHO"], org["ORTHO-W7"]], clinicians=[alice, bob], n=60)
    params = ReportParameters.from_dict(SCOPES[0])
    episodes = in_scope(SCOPES[0])
    # An episode with a delay, discharged and not (yet) known to have been readmitted.
    having_delay = set(Variance.objects.current().filter(variance_type="delay").values_list("episode_id", flat=True))
    patient = next(
        e for e in episodes if e.pk in having_delay and e.status == "completed" and e.readmitted_30d is False
    )

    with time_machine.travel(timezone.now(), tick=False):
        before = rows_by_key(cost_report(params)["tables"]["outcomes"])["delay/with"]
        assert before["readmission_share"] == readmission_share(episodes, "delay", "with")

        services.episode_record_outcomes(episode=patient, readmitted_30d=True, actor=bob)
        after = rows_by_key(cost_report(params)["tables"]["outcomes"])["delay/with"]

        episodes = in_scope(SCOPES[0])
        assert after["readmission_share"] == readmission_share(episodes, "delay", "with")
        assert Decimal(after["readmission_share"]) > Decimal(before["readmission_share"])
        assert after["episodes"] == before["episodes"]
        assert EpisodeCost.objects.get(episode=patient).readmitted_30d is True

        # A correction at the very same instant (the clock stands still) is recomputed too.
        services.episode_record_outcomes(episode=patient, readmitted_30d=False, actor=bob)
        corrected = rows_by_key(cost_report(params)["tables"]["outcomes"])["delay/with"]

    assert corrected["readmission_share"] == before["readmission_share"]
    assert EpisodeCost.objects.get(episode=patient).readmitted_30d is False
