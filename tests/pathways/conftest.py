import pytest

from tests.pathways.tkr import build_tkr


@pytest.fixture
def tkr(org, bob):
    """The DOMAIN.md knee pathway, published by bob (clinical lead, ORTHO)."""
    return build_tkr(org["ORTHO"], user=bob)
