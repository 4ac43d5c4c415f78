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
def duration(value: int | None) -> str:
    """A length of time in minutes, rounded down to read at a glance.

    45 -> "45 min"; 125 -> "2 h 5 min"; 2009 -> "1 day 9 h"; 19411492 -> "13,480 days".
    Unlike ``minutes`` (exact timing rules), this drops the smaller unit once the
    larger one makes it noise: minutes after a day, hours after a week.
    """
    if value is None:
        return ""
    value = int(value)
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value < 60:
        return f"{sign}{value} min"
    if value < 1440:
        hours, mins = divmod(value, 60)
        return f"{sign}{hours} h {mins} min" if mins else f"{sign}{hours} h"
    days, rest = divmod(value, 1440)
    day_text = f"{days:,} day{'s' if days != 1 else ''}"
    hours = rest // 60
    if days >= 7 or not hours:
        return f"{sign}{day_text}"
    return f"{sign}{day_text} {hours} h"


@register.filter
def anchor_label(step: Step) -> str:
    if step.anchor_id is None:
        return EPISODE_START
    return f"{step.anchor.code} ({step.anchor.name})"


@register.filter
def window_label(step: Step) -> str:
    """When a step is due, in words; a negative offset reads as "before" its anchor."""
    low, high = step.window_min_minutes, step.window_max_minutes
    if low is None and high is None:
        return "no timing rule"
    anchor = EPISODE_START if step.anchor_id is None else step.anchor.code
    if low is not None and high is not None:
        if low == high:
            return f"at {_offset(low, anchor)}"
        if low < 0 <= high:
            return f"from {minutes(-low)} before to {minutes(high)} after {anchor}"
        if high < 0:
            return f"{minutes(-low)} to {minutes(-high)} before {anchor}"
        return f"{minutes(low)} to {minutes(high)} after {anchor}"
    if high is not None:
        return f"at least {minutes(-high)} before {anchor}" if high < 0 else f"within {minutes(high)} after {anchor}"
    return f"no earlier than {_offset(low, anchor)}"


def _offset(value: int, anchor: str) -> str:
    return f"{minutes(-value)} before {anchor}" if value < 0 else f"{minutes(value)} after {anchor}"


@register.filter
def plain(value) -> str:
    """A Decimal without trailing zeros: 3.000 -> "3", 0.250 -> "0.25"."""
    if value is None:
        return ""
    text = f"{value.normalize():f}" if hasattr(value, "normalize") else str(value)
    return text


CHANGE_LABELS = {
    "create": "created the pathway",
    "pathway_update": "changed the pathway's details",
    "draft": "drafted this version",
    "publish": "published this version",
    "retire": "retired this version",
    "import": "imported this version from JSON",
    "stage_add": "added a stage",
    "stage_update": "renamed a stage",
    "stage_reorder": "reordered the stages",
    "stage_remove": "removed a stage",
    "step_add": "added a step",
    "step_update": "changed a step",
    "step_reorder": "reordered steps",
    "step_remove": "removed a step",
    "resource_add": "planned a resource",
    "resource_update": "changed a planned resource",
    "resource_remove": "removed a planned resource",
}


@register.filter
def change_label(change) -> str:
    """ "added a step (SURGERY)": what a PathwayChange did, in words."""
    label = CHANGE_LABELS.get(change.action, change.action.replace("_", " "))
    detail = change.detail or {}
    subject = detail.get("step") or detail.get("stage")
    if isinstance(subject, dict):
        subject = subject.get("code")
    return f"{label} ({subject})" if isinstance(subject, str) and subject else label
