from accounts.permissions import EPISODE_ROLES, has_role

from .selectors import unexplained_for


def inbox(request):
    """The unexplained-variance count shown in the navigation (one COUNT query)."""
    user = getattr(request, "user", None)
    if not user or not user.is_authenticated or not has_role(user, *EPISODE_ROLES):
        return {}
    return {"inbox_count": unexplained_for(user).count()}
