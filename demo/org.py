"""The fictional Riverside Community Hospitals NHS Trust and one demo user per role."""

from django.conf import settings
from django.db import transaction

from accounts.models import Membership, OrgUnit, User
from accounts.services import org_unit_create

Role = Membership.Role

# (code, name, kind, parent code)
ORG_TREE = [
    ("RCH", "Riverside Community Hospitals NHS Trust", OrgUnit.Kind.TRUST, None),
    ("SURG", "Surgery Division", OrgUnit.Kind.DIVISION, "RCH"),
    ("MED", "Medicine & Emergency Division", OrgUnit.Kind.DIVISION, "RCH"),
    ("ORTHO", "Trauma & Orthopaedics", OrgUnit.Kind.SPECIALTY, "SURG"),
    ("ORTHO-W7", "Ward 7 (Orthopaedic)", OrgUnit.Kind.WARD, "ORTHO"),
    ("ORTHO-ELEC", "Elective Orthopaedic Team", OrgUnit.Kind.TEAM, "ORTHO"),
    ("EM", "Emergency Medicine", OrgUnit.Kind.SPECIALTY, "MED"),
    ("ED", "Emergency Department", OrgUnit.Kind.WARD, "EM"),
    ("ACM", "Acute Medicine", OrgUnit.Kind.SPECIALTY, "MED"),
    ("AMU", "Acute Medical Unit", OrgUnit.Kind.WARD, "ACM"),
]

# username, display name, role, unit code
DEMO_USERS = [
    ("clinician", "Dr Alice Adeyemi", Role.CLINICIAN, "ORTHO"),
    ("lead", "Mr Bob Okafor (Clinical Lead, T&O)", Role.CLINICAL_LEAD, "ORTHO"),
    ("manager", "Carol Singh (Divisional Manager)", Role.MANAGER, "SURG"),
    ("finance", "Dev Patel (Finance Business Partner)", Role.FINANCE, "RCH"),
    ("admin", "Erin Walsh (System Administrator)", Role.ADMIN, "RCH"),
    # A second team, so that privacy between units is visible in the demo.
    ("ed-clinician", "Dr Farah Haddad", Role.CLINICIAN, "EM"),
    ("ed-lead", "Dr George Mensah (Clinical Lead, ED)", Role.CLINICAL_LEAD, "EM"),
]


@transaction.atomic
def load_org() -> dict[str, OrgUnit]:
    units: dict[str, OrgUnit] = {u.code: u for u in OrgUnit.objects.all()}
    for code, name, kind, parent in ORG_TREE:
        if code not in units:
            units[code] = org_unit_create(code=code, name=name, kind=kind, parent=units[parent] if parent else None)
    return units


@transaction.atomic
def load_users(units: dict[str, OrgUnit]) -> list[User]:
    users = []
    for username, display_name, role, unit_code in DEMO_USERS:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(username=username, display_name=display_name)
            user.set_password(settings.DEMO_PASSWORD)
            if role == Role.ADMIN:
                user.is_staff = True
                user.is_superuser = True
            user.save()
        Membership.objects.get_or_create(user=user, org_unit=units[unit_code], role=role)
        users.append(user)
    return users
