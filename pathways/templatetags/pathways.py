"""How timing windows read to a clinician: "0 min to 36 h after admission"."""

from django import template

from ..models import Step

register = template.Library()

EPISODE_START = "the episode start"


@register.filter
def minutes(value: int | None) -> str:
    """2160 -> "36 h"; 90 -> "1 h 30 min"; 4320 -> "3 days"; None -> ""."""
    if value is None:
        return ""
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value and value % 1440 == 0:
        days = value // 1440
        return f"{sign}{days} day{'s' if days != 1 else ''}"
    hours, mins = divmod(value, 60)
    if hours and mins:
        return f"{sign}{hours} h {mins} min"
    if hours:
        return f"{sign}{hours} h"
    return f"{sign}{mins} min"


@register.filter
def anchor_label(step: Step) -> str:
    if step.anchor_id is None:
        return EPISODE_START
    return f"{step.anchor.code} ({step.anchor.name})"


@register.filter
def window_label(step: Step) -> str:
    low, high = step.window_min_minutes, step.window_max_minutes
    if low is None and high is None:
        return "no timing rule"
    after = f"after {EPISODE_START}" if step.anchor_id is None else f"after {step.anchor.code}"
    if low is not None and high is not None:
        if low == high:
            return f"at {minutes(low)} {after}"
        return f"{minutes(low)} to {minutes(high)} {after}"
    if high is not None:
        return f"within {minutes(high)} {after}"
    return f"not before {minutes(low)} {after}"


@register.filter
def plain(value) -> str:
    """A Decimal without trailing zeros: 3.000 -> "3", 0.250 -> "0.25"."""
    if value is None:
        return ""
    text = f"{value.normalize():f}" if hasattr(value, "normalize") else str(value)
    return text
