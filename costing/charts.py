"""Charts as geometry for server-rendered inline SVG (no JavaScript, no CDN, no inline styles).

Each function turns report rows into plain numbers and strings that
``templates/costing/partials/chart_*.html`` draw; colours come from CSS classes,
so the Content Security Policy needs no ``style-src 'unsafe-inline'``. Every chart
is drawn next to the table it comes from, which is its accessible fallback.
A suppressed value (``*``) is left out: a gap in a line, a missing bar.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from .money import display

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 72, 44, 16, 56


def _frame() -> dict:
    """Positions every chart shares (computed here: templates do no arithmetic)."""
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "baseline": HEIGHT - BOTTOM,
        "tick_x": LEFT - 6,
        "label_y": HEIGHT - BOTTOM + 18,
        "share_x": WIDTH - RIGHT + 6,
    }


def _number(value) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _nice_ticks(low: Decimal, high: Decimal, count: int = 5) -> list[Decimal]:
    """Round tick values spanning [low, high] (including zero)."""
    low, high = min(low, Decimal(0)), max(high, Decimal(0))
    span = high - low or Decimal(1)
    raw = span / count
    magnitude = Decimal(10) ** (len(str(int(raw))) - 1) if raw >= 1 else Decimal("0.1")
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    start = (low / step).to_integral_value(rounding="ROUND_FLOOR") * step
    ticks, value = [start], start
    while value < high and len(ticks) < 12:  # the top tick is at or above the highest value
        value += step
        ticks.append(value)
    return ticks


def _axis(values: list[Decimal], fmt) -> tuple:
    ticks = _nice_ticks(min(values, default=Decimal(0)), max(values, default=Decimal(1)))
    low, high = ticks[0], ticks[-1] if ticks[-1] != ticks[0] else ticks[0] + 1
    plot_h = HEIGHT - TOP - BOTTOM

    def y(value: Decimal) -> float:
        return round(TOP + float((high - value) / (high - low)) * plot_h, 1)

    return y, [{"y": y(t), "label": fmt(t)} for t in ticks]


def month_label(label: str) -> str:
    """ "2025-12" -> "Dec 25" (other labels unchanged)."""
    try:
        year, month = (int(part) for part in label.split("-"))
        return f"{MONTHS[month - 1]} {year % 100:02d}"
    except (ValueError, IndexError):
        return label


MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _money_tick(value: Decimal) -> str:
    return display(value).removesuffix(".00")


def _share_tick(value: Decimal) -> str:
    return f"{value * 100:.0f}%"


def line_chart(labels: list[str], series: list[tuple[str, list]], *, money: bool = True) -> dict:
    """Lines over months: ``series`` is ``[(name, [value or '*' per label])]``."""
    values = [v for _, points in series for v in map(_number, points) if v is not None]
    y, ticks = _axis(values, _money_tick if money else _share_tick)
    plot_w = WIDTH - LEFT - RIGHT
    step = plot_w / max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return round(LEFT + i * step, 1)

    lines = []
    for index, (name, points) in enumerate(series):
        segments, current, dots = [], [], []
        for i, raw in enumerate(points):
            value = _number(raw)
            if value is None:  # suppressed or missing: break the line
                if current:
                    segments.append(current)
                current = []
                continue
            current.append(f"{x(i)},{y(value)}")
            dots.append(
                {
                    "x": x(i),
                    "y": y(value),
                    "label": f"{labels[i]}: {_money_tick(value) if money else _share_tick(value)}",
                }
            )
        if current:
            segments.append(current)
        lines.append(
            {"name": name, "css": f"series-{index + 1}", "paths": [" ".join(s) for s in segments if s], "dots": dots}
        )
    every = max(1, -(-len(labels) // 7))  # at most about seven labels fit
    return {
        **_frame(),
        "ticks": ticks,
        "x_labels": [{"x": x(i), "label": month_label(label)} for i, label in enumerate(labels) if i % every == 0],
        "lines": lines,
        "empty": not values,
    }


LABEL_CHARS = 40  # what fits beside a Pareto bar


def _cut(text: str, size: int, *, keep: int = 0) -> str:
    """The first ``size`` characters, ending at a word break where one is near (never before ``keep``)."""
    if len(text) <= size:
        return text
    cut = text[:size]
    space = cut.rfind(" ", max(size - 12, size // 2, keep))
    if text[size] != " " and space > 0:
        cut = cut[:space]
    return cut.rstrip()


def _common_prefix(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def short_labels(labels: list[str], size: int = LABEL_CHARS) -> list[str]:
    """Labels that fit beside a bar and still tell the bars apart.

    A long label loses its end: "Could not address recommended action…". Where two would then
    read the same, each keeps its start and the words where it parts from the other:
    "Could not address … limited time" and "Could not … need for more information…".
    The full label goes in the chart's <title> and its table.
    """
    ends = [label if len(label) <= size else _cut(label, size - 1) + "…" for label in labels]
    shown = []
    for label, end in zip(labels, ends, strict=True):
        twins = [other for other, other_end in zip(labels, ends, strict=True) if other_end == end and other != label]
        if not twins:
            shown.append(end)
            continue
        parts = max(_common_prefix(label, other) for other in twins)  # the first character that differs
        start = label.rfind(" ", 0, parts) + 1  # the word it is in (or the one before a space)
        if parts - start > 12:
            start = parts - 8
        tail = label[start:]
        head = _cut(label, max(size - 3 - len(tail), 12))
        room = size - 3 - len(head)
        if len(tail) > room:
            tail = _cut(tail, room - 1, keep=parts - start + 1) + "…"
        shown.append(f"{head} … {tail}")
    return shown


def pareto_chart(rows: list[tuple[str, object, object]], *, limit: int = 10) -> dict:
    """Horizontal bars, most frequent first, each with the running share of the whole.

    ``rows`` is ``[(label, count, cumulative share)]`` from a Pareto table. Long
    labels read better beside a bar than under it. Where a count is suppressed the
    bar is left out; the running share stops at the first suppressed one.
    """
    rows = [(label, _number(value), _number(share)) for label, value, share in rows][:limit]
    labels = short_labels([label for label, _, _ in rows])
    known = [v for _, v, _ in rows if v is not None]
    top = max(known, default=Decimal(1)) or Decimal(1)
    row_h, label_w, value_w, share_w = 28, 250, 44, 70
    bar_left = label_w + 8
    bar_span = WIDTH - bar_left - value_w - share_w
    bars, running_open = [], True
    for i, (label, value, share) in enumerate(rows):
        y = 8 + i * row_h
        running_open = running_open and share is not None
        bar = {
            "y": y,
            "text_y": y + row_h / 2,
            "label": labels[i],
            "full": label,
            "share": f"{share * 100:.0f}%" if running_open else "",
        }
        if value is None:
            bar.update(hidden=True, text="*", text_x=bar_left + 4)
        else:
            width = round(float(value / top) * bar_span, 1)
            bar.update(x=bar_left, width=max(width, 1), height=row_h - 8, bar_y=y + 4, text=f"{value:.0f}",
                       text_x=round(bar_left + width + 4, 1))  # fmt: skip
        bars.append(bar)
    return {
        "width": WIDTH,
        "height": 16 + len(rows) * row_h,
        "label_x": label_w,
        "share_x": WIDTH - 4,
        "share_title_y": 4,
        "bars": bars,
        "empty": not known,
    }


def waterfall_chart(start: tuple[str, object], steps: list[tuple[str, object]], end: tuple[str, object]) -> dict:
    """Expected cost, each component's variance as a floating bar, actual cost."""
    first, last = _number(start[1]), _number(end[1])
    if first is None or last is None:
        return {"empty": True}
    levels, running = [first, last], first
    moves = []
    for label, raw in steps:
        amount = _number(raw)
        if amount is None:
            moves.append((label, None, running))
            continue
        moves.append((label, amount, running))
        running += amount
        levels.append(running)
    y, ticks = _axis(levels, _money_tick)
    plot_w = WIDTH - LEFT - RIGHT
    count = len(steps) + 2
    slot = plot_w / count
    bars = []

    def bar(i, label, low, high, css, text):
        top, bottom = y(max(low, high)), y(min(low, high))
        bars.append(
            {
                "x": round(LEFT + i * slot + slot * 0.12, 1),
                "y": top,
                "width": round(slot * 0.76, 1),
                "height": max(round(bottom - top, 1), 1),
                "centre": round(LEFT + (i + 0.5) * slot, 1),
                "label": label,
                "lines": label.split(", "),
                "css": css,
                "text": text,
                "text_y": round(top - 4, 1),
            }
        )

    bar(0, start[0], Decimal(0), first, "total", _money_tick(first))
    for i, (label, amount, base) in enumerate(moves, start=1):
        if amount is None:
            bars.append(
                {
                    "centre": round(LEFT + (i + 0.5) * slot, 1),
                    "label": label,
                    "lines": label.split(", "),
                    "hidden": True,
                    "text": "*",
                }
            )
            continue
        if not amount:
            bar(i, label, base, base, "zero", "0")
            continue
        css = "adverse" if amount > 0 else "favourable"
        sign = "+" if amount > 0 else "−"
        bar(i, label, base, base + amount, css, f"{sign}{_money_tick(abs(amount))}")
    bar(count - 1, end[0], Decimal(0), last, "total", _money_tick(last))
    return {
        **_frame(),
        "zero": y(Decimal(0)),
        "ticks": ticks,
        "bars": bars,
        "empty": False,
    }
