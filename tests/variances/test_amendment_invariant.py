"""Amendment, never overwrite: a Hypothesis state machine records, amends and withdraws
variances and checks after every step that each earlier state is still readable,
exactly, from its revision, and that the counts match.
"""

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from tests.variances.conftest import T0
from tests.variances.factories import reason, start, step
from variances import services
from variances.models import Variance, VarianceRevision

CAUSES = st.sampled_from(Variance.Cause.values)
VALENCES = st.sampled_from(Variance.Valence.values)
TEXT = st.text(alphabet="abcdefghij klmnop", min_size=0, max_size=20)
REASON_CODES = ["service-not-available", "patient-contraindication", "prefers-alternative", "limited-time"]
TRACKED = ("status", "cause", "valence", "rationale", "reason_id", "withdrawn_reason", "revision")


@pytest.mark.slow
def test_every_revision_of_every_variance_stays_reconstructable(knee, org, alice, bob, clock):
    counter = iter(range(10_000))

    class Amendments(RuleBasedStateMachine):
        variances = Bundle("variances")

        @initialize()
        def new_episode(self):
            self.episode = start(knee, org["ORTHO"], alice, ref=f"PT-{next(counter):05d}H", started_at=T0)
            self.reasons = {code: reason(code) for code in REASON_CODES}
            # variance id -> the expected state after each revision, in order
            self.expected: dict[int, list[dict]] = {}

        @rule(target=variances, cause=CAUSES, valence=VALENCES, rationale=TEXT, code=st.sampled_from(REASON_CODES))
        def record(self, cause, valence, rationale, code):
            variance = services.variance_record(
                episode=self.episode,
                step=step(knee, "SURGERY"),
                variance_type="delay",
                cause=cause,
                reason=self.reasons[code],
                valence=valence,
                rationale=rationale,
                occurred_at=T0,  # the episode starts then, and the clock stands there
                actor=alice,
            )
            self.expected[variance.pk] = [self.state_of(variance)]
            return variance.pk

        @rule(
            variance_id=variances,
            cause=CAUSES,
            rationale=TEXT,
            code=st.sampled_from(REASON_CODES),
            stale=st.booleans(),
        )
        def amend(self, variance_id, cause, rationale, code, stale):
            history = self.expected[variance_id]
            current = history[-1]
            changes = {"cause": cause, "rationale": rationale.strip(), "reason": self.reasons[code]}
            would_change = (cause, rationale.strip(), self.reasons[code].pk) != (
                current["cause"],
                current["rationale"],
                current["reason_id"],
            )
            variance = Variance.objects.get(pk=variance_id)
            expected_revision = current["revision"] - 1 if stale else current["revision"]
            try:
                services.variance_amend(
                    variance=variance,
                    changes=changes,
                    reason=f"amend {len(history)}",
                    actor=alice,
                    expected_revision=expected_revision,
                )
            except services.StaleRevisionError:
                assert stale
                return
            except ValidationError:
                assert current["status"] == "withdrawn" or not would_change
                return
            assert not stale and current["status"] != "withdrawn" and would_change
            history.append(
                {
                    **current,
                    "cause": cause,
                    "rationale": rationale.strip(),
                    "reason_id": self.reasons[code].pk,
                    "revision": current["revision"] + 1,
                    # the lead judged the earlier content: amending reopens the review
                    "status": "documented",
                }
            )

        @rule(variance_id=variances, why=st.sampled_from(["wrong patient", "duplicate"]))
        def withdraw(self, variance_id, why):
            history = self.expected[variance_id]
            current = history[-1]
            try:
                services.variance_withdraw(variance=Variance.objects.get(pk=variance_id), reason=why, actor=bob)
            except ValidationError:
                assert current["status"] == "withdrawn"
                return
            history.append(
                {**current, "status": "withdrawn", "withdrawn_reason": why, "revision": current["revision"] + 1}
            )

        @rule(variance_id=variances)
        def review(self, variance_id):
            history = self.expected[variance_id]
            current = history[-1]
            try:
                services.variance_review(
                    variance=Variance.objects.get(pk=variance_id),
                    justified=True,
                    avoidable=False,
                    comment="",
                    actor=bob,
                )
            except ValidationError:
                assert current["status"] != "documented"
                return
            history.append({**current, "status": "reviewed", "revision": current["revision"] + 1})

        @staticmethod
        def state_of(variance) -> dict:
            return {name: getattr(variance, name) for name in TRACKED}

        @invariant()
        def every_revision_is_reconstructable(self):
            if not hasattr(self, "episode"):
                return
            variances = {v.pk: v for v in Variance.objects.filter(episode=self.episode)}
            assert set(variances) == set(self.expected)
            revisions = VarianceRevision.objects.filter(variance__episode=self.episode).order_by("variance", "number")
            assert revisions.count() == sum(len(h) for h in self.expected.values())
            by_variance: dict[int, list] = {}
            for revision in revisions:
                by_variance.setdefault(revision.variance_id, []).append(revision)
            for pk, history in self.expected.items():
                stored = by_variance[pk]
                assert [r.number for r in stored] == list(range(1, len(history) + 1))
                for revision, expected in zip(stored, history, strict=True):
                    state = services.variance_state(revision)
                    assert {name: state[name] for name in TRACKED} == expected
                # The newest revision is exactly the variance as it stands.
                assert stored[-1].snapshot == services.variance_snapshot(variances[pk])
                assert variances[pk].revision == len(history)

    run_state_machine_as_test(
        Amendments,
        settings=settings(
            max_examples=20,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
