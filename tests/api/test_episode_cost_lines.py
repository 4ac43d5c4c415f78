"""GET /api/v1/episodes/{id}/: the cost lines of the DOMAIN.md knee example, each with the record that explains it."""

from decimal import Decimal

import pytest

from tests.costing.factories import knee_episode
from variances.models import Variance

pytestmark = pytest.mark.django_db


@pytest.fixture
def knee(org, alice):
    return knee_episode(org, alice)[1]


def test_the_episode_lists_its_cost_lines_with_the_variance_that_explains_each(api, alice, knee):
    substitution = knee.variances.get(variance_type=Variance.Type.SUBSTITUTION)
    override = knee.variances.get(variance_type=Variance.Type.OVERRIDE)
    delay = knee.variances.get(variance_type=Variance.Type.DELAY)

    costs = api(alice).get(f"/api/v1/episodes/{knee.pk}/").json()["costs"]

    lines = {(line["step"], line["resource"], line["component"]): line for line in costs["lines"]}
    assert len(lines) == len(costs["lines"]) == 7
    implant = lines[("SURGERY", "IMPLANT", "price")]
    assert (implant["amount"], implant["direction"], implant["nature"]) == ("200", "U", "cash")
    assert (implant["variance"], implant["cause"], implant["repeated"]) == (substitution.pk, "system", False)
    consultant = lines[("SURGERY", "CONSULTANT", "usage")]
    assert (consultant["amount"], consultant["nature"], consultant["variance"]) == ("56.25", "capacity", override.pk)
    assert lines[("WARD-STAY", "BED-DAY", "los")]["variance"] == delay.pk
    physio = lines[("PHYSIO", "PHYSIOTHERAPIST", "usage")]
    assert (physio["variance"], physio["cause"], physio["repeated"]) == (None, "repeat", True)
    assert physio["activity"] == "Physiotherapy session"
    assert costs["lines"][0]["resource"] == "BED-DAY"  # largest adverse first: 2 extra nights at 180
    by_variance = {}
    for line in costs["lines"]:
        by_variance[line["variance"]] = by_variance.get(line["variance"], Decimal(0)) + Decimal(line["amount"])
    assert by_variance[override.pk] == Decimal("239.25")
    assert by_variance[delay.pk] == Decimal("696")
    assert sum(by_variance.values()) == Decimal(costs["variance"]) == Decimal("1163.375")
