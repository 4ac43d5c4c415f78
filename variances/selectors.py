from accounts.permissions import EPISODE_ROLES, has_role

from .models import Episode, Variance


def unexplained_for(user):
    """The clinician's inbox: unexplained variances on episodes they are responsible for."""
    return Variance.objects.unexplained().for_clinician(user)


def home_panel(user) -> dict:
    if not has_role(user, *EPISODE_ROLES):
        return {}
    return {
        "my_unexplained": unexplained_for(user).count(),
        "my_active_episodes": Episode.objects.active().filter(responsible_clinician=user).count(),
    }
