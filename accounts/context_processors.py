from .models import Membership
from .permissions import primary_role, roles_of


def roles(request):
    user = getattr(request, "user", None)
    if not user or not user.is_authenticated:
        return {"user_roles": set(), "primary_role": None, "primary_role_label": ""}
    role = primary_role(user)
    return {
        "user_roles": roles_of(user),
        "primary_role": role,
        "primary_role_label": Membership.Role(role).label if role else "",
    }
