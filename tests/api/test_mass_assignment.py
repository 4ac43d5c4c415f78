"""Mass assignment: payloads with server-set or unknown fields are refused by name and change nothing.

Hypothesis adds random server-set fields (with random values) and random unknown keys
to otherwise valid requests.
"""

from datetime import timedelta

from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import error_fields
from tests.api.factories import build_tkr, reason, record_variance, start_episode, theatre_delay
from variances.models import Episode, StepEvent, Variance

SERVER_SET = ["id", "recorded_at", "recorded_by", "status", "revision", "costs", "documented_at", "reviewed_by",
              "reviewed_at", "detection", "source", "created_at", "updated_at", "justified", "avoidable"]  # fmt: skip
JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=3)
)
# Every field name some endpoint accepts: a random key must not be one of them by chance.
ACCEPTED = {"episode", "step", "resource", "type", "cause", "reason", "valence", "level", "rationale", "action_taken",
            "occurred_at", "amendment_reason", "activity", "performed_by", "quantities", "external_id"}  # fmt: skip
UNKNOWN_KEYS = st.text(min_size=1, max_size=12).filter(lambda k: k not in SERVER_SET and k not in ACCEPTED)


def extras():
    server_set = st.dictionaries(st.sampled_from(SERVER_SET), JSON_VALUES, max_size=4)
    unknown = st.dictionaries(UNKNOWN_KEYS, JSON_VALUES, max_size=3)
    return st.tuples(server_set, unknown).map(lambda t: {**t[0], **t[1]}).filter(bool)


HYPOTHESIS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@HYPOTHESIS
@given(extra=extras())
def test_it_refuses_extra_fields_when_recording_a_variance(api, alice, org, extra):
    if not Episode.objects.exists():
        start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)
        reason()
    episode = Episode.objects.get()
    body = theatre_delay(episode, occurred_at=timezone.now().isoformat())
    allowed = set(body) | {"resource", "level", "action_taken"}
    extra = {k: v for k, v in extra.items() if k not in allowed}
    before = Variance.objects.count()

    response = api(alice).post("/api/v1/variances/", {**body, **extra}, format="json")

    if not extra:
        return
    assert response.status_code == 400
    assert set(extra) <= set(error_fields(response))
    assert Variance.objects.count() == before


@HYPOTHESIS
@given(extra=extras())
def test_it_refuses_extra_fields_when_amending_and_changes_nothing(api, alice, org, extra):
    if not Variance.objects.exists():
        record_variance(start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice), alice)
    variance = Variance.objects.get()
    state = Variance.objects.filter(pk=variance.pk).values().get()
    client = api(alice)
    etag = client.get(f"/api/v1/variances/{variance.pk}/")["ETag"]

    response = client.patch(
        f"/api/v1/variances/{variance.pk}/",
        {"cause": "patient", "amendment_reason": "checking", **extra},
        format="json",
        HTTP_IF_MATCH=etag,
    )

    assert response.status_code == 400
    assert set(extra) <= set(error_fields(response))
    assert Variance.objects.filter(pk=variance.pk).values().get() == state


@HYPOTHESIS
@given(extra=extras())
def test_it_refuses_extra_fields_in_events(api, sam, alice, org, extra):
    if not Episode.objects.exists():
        start_episode(build_tkr(org["ORTHO"]), org["ORTHO"], alice)
    episode = Episode.objects.get()
    event = {"step": "PREOP", "occurred_at": (episode.started_at + timedelta(hours=1)).isoformat()}
    extra = {k: v for k, v in extra.items() if k not in ("activity", "performed_by", "quantities", "external_id")}

    response = api(sam).post(f"/api/v1/episodes/{episode.pk}/events/", [event, {**event, **extra}], format="json")

    if not extra:
        return
    assert response.status_code == 400
    assert {f"1.{k}" for k in extra} <= set(error_fields(response))
    assert StepEvent.objects.count() == 0
