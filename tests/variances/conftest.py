"""Fixtures for variance tests: the KNEE pathway (see factories.py) and a clock."""

from datetime import UTC, datetime

import pytest

from tests.variances.factories import build_pathway, reason, start

# A Monday morning; every test that depends on "now" travels relative to it.
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def knee(org):
    return build_pathway(org["ORTHO"])


@pytest.fixture
def clock(time_machine):
    """Time stands still at T0 + whatever the test moves it to."""
    time_machine.move_to(T0, tick=False)
    return time_machine


@pytest.fixture
def episode(knee, org, alice, clock):
    return start(knee, org["ORTHO"], alice, started_at=T0)


@pytest.fixture
def seeded_reasons(db):
    """The base catalogue (a transactional test's flush empties the seeded table)."""
    return reason()
