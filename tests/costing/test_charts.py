"""The Pareto chart's reason labels: short enough to fit, never two alike, the full text on hover."""

import html

from django.template.loader import render_to_string

from costing.charts import LABEL_CHARS, pareto_chart, short_labels

LIMITED_TIME = "Could not address recommended action due to limited time"
MORE_INFO = "Could not address recommended action due to need for more information/pending results/pending consult"


def drawn(chart: dict) -> str:
    return render_to_string(
        "costing/partials/chart.html",
        {
            "chart": {
                "kind": "pareto",
                "title": "Why departures happen (Pareto)",
                "summary": "Variances per reason.",
                "data": chart,
                "table": {"title": "Variances by reason", "empty": True},
            },
            "chart_id": "t",
        },
    )


def test_two_long_labels_that_begin_alike_read_differently_and_keep_their_full_text():
    chart = pareto_chart([(LIMITED_TIME, 12, "0.6"), (MORE_INFO, 8, "1.0")])
    first, second = (bar["label"] for bar in chart["bars"])

    # Cut at the end alone, both would read "Could not address recommended action…".
    assert first != second
    assert "limited time" in first and "need for more" in second
    assert all(len(label) <= LABEL_CHARS for label in (first, second))
    assert [bar["full"] for bar in chart["bars"]] == [LIMITED_TIME, MORE_INFO]

    svg = html.unescape(drawn(chart))
    for bar in chart["bars"]:
        assert f"<title>{bar['full']}</title>{bar['label']}</text>" in svg  # the label shows it on hover
        assert f"<title>{bar['full']}: {bar['text']}</title></rect>" in svg  # and so does the bar


def test_only_labels_that_would_read_alike_are_cut_in_the_middle():
    labels = [
        "Treatment or service is not practically available",
        "Post-operative physiotherapy session not delivered on the ward: staffing",
        "Post-operative physiotherapy session not delivered on the ward: patient unwell",
        "Post-operative physiotherapy session not delivered on the ward",
        "Patient refuses",
    ]
    shown = short_labels(labels)

    assert shown[0] == "Treatment or service is not practically…"  # unique: cut at the end, at a word
    assert shown[4] == "Patient refuses"  # short: whole
    assert len(set(shown)) == len(shown)
    assert shown[1].endswith("staffing") and shown[2].endswith("patient unwell") and shown[3].endswith("ward")
    assert all(label.startswith("Post-operative") and len(label) <= LABEL_CHARS for label in shown[1:4])


def test_labels_that_differ_only_by_their_last_letter_still_differ():
    shown = short_labels(["A" * 60 + "x", "A" * 60 + "y"])

    assert shown[0] != shown[1]
    assert shown[0].endswith("x") and shown[1].endswith("y")
    assert all(len(label) <= LABEL_CHARS for label in shown)
