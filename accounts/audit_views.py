"""Audit reports for clinical leads and administrators.

- who accessed an episode (by its pseudonymous reference): episode pages link here;
- what one person or service account did (their activity);
- for administrators, the state of the tamper check of the chain.
Reading these reports is itself audited.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import selectors
from .audit import audit_record
from .models import AuditEvent, Membership, User
from .permissions import has_role, out_of_scope, role_required
from .services import audit_check_request

Role = Membership.Role
PAGE_SIZE = 50


@role_required(*selectors.AUDIT_READER_ROLES)
def audit_home(request):
    username = request.GET.get("user", "").strip()
    episode_ref = request.GET.get("episode", "").strip().upper()
    if username:
        return redirect("accounts:audit_user", username=username)
    if episode_ref:
        return redirect("accounts:audit_episode", episode_ref=episode_ref)
    is_admin = has_role(request.user, Role.ADMIN)
    return render(
        request,
        "accounts/audit_home.html",
        {
            "people": selectors.users_in_scope(request.user),
            "recent": selectors.recent_events(request.user),
            "is_admin": is_admin,
            "check": selectors.latest_check() if is_admin else None,
        },
    )


@role_required(*selectors.AUDIT_READER_ROLES)
def audit_user(request, username: str):
    subject = selectors.user_in_scope(request.user, username)
    if subject is None:
        if User.objects.filter(username=username).exists():
            raise out_of_scope(object_type="accounts.user", object_id=username)
        raise Http404("No such user.")
    page = Paginator(selectors.activity_of(request.user, subject), PAGE_SIZE).get_page(request.GET.get("page"))
    audit_record(action="audit.read_activity", obj=subject, detail={"page": page.number})
    return render(request, "accounts/audit_user.html", {"subject": subject, "page": page})


@role_required(*selectors.AUDIT_READER_ROLES)
def audit_episode(request, episode_ref: str):
    events = selectors.episode_events(request.user, episode_ref)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    if not page.object_list:
        # Nothing in the reader's scope: a missing episode and another unit's look alike.
        if AuditEvent.objects.filter(episode_ref=episode_ref).exists():
            raise out_of_scope(object_type="audit.episode", object_id=episode_ref)
        raise Http404("No recorded access to this episode is available to you.")
    audit_record(action="audit.read_episode_access", object_type="audit.episode", object_id=episode_ref)
    return render(
        request,
        "accounts/audit_episode.html",
        {"episode_ref": episode_ref, "page": page, "accessors": selectors.episode_accessors(events)},
    )


@role_required(Role.ADMIN)
@require_POST
def audit_check_create(request):
    check = audit_check_request(requested_by=request.user)
    messages.success(
        request,
        f"Verification {check.pk} is queued. Its result appears below when a worker has walked the chain.",
    )
    return redirect("accounts:audit_home")
