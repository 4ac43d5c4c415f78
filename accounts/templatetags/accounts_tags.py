from django import template

from accounts.models import Membership

register = template.Library()
_LABELS = dict(Membership.Role.choices)


@register.filter
def role_label(value: str) -> str:
    """``clinical_lead`` -> ``Clinical lead``; anything unknown is shown as stored."""
    return _LABELS.get(value, value)
