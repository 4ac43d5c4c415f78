"""User-facing wording: the right article before a variance type."""

import pytest

from variances.models import Variance, variance_type_phrase, with_article


@pytest.mark.parametrize(
    ("noun", "phrase"),
    [("omission", "an omission"), ("delay", "a delay"), ("early step", "an early step"), ("exit", "an exit")],
)
def test_with_article_chooses_a_or_an(noun, phrase):
    assert with_article(noun) == phrase


def test_every_variance_type_reads_with_its_article():
    phrases = {t: variance_type_phrase(t) for t in Variance.Type.values}

    assert phrases["addition"] == "an addition"
    assert phrases["early"] == "an early step"
    assert phrases["exit"] == "an exit from the pathway"
    assert phrases["omission"] == "an omission"
    assert phrases["delay"] == "a delay"
    for phrase in phrases.values():
        article, _, noun = phrase.partition(" ")
        assert article == ("an" if noun[0] in "aeiou" else "a"), phrase
    assert variance_type_phrase("unknown") == "an unknown"
