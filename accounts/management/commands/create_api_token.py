"""``manage.py create_api_token USERNAME [--expires-days N] [--name NAME]``.

The secret is shown once, as the last line of the output (scripts can take
``| tail -n 1``); only its SHA-256 is stored.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.permissions import roles_of
from accounts.services import api_token_create


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError
    return number


class Command(BaseCommand):
    help = "Create an API bearer token for a user or service account; prints the token as the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--expires-days", type=positive_int, default=None, help="Days until the token expires.")
        parser.add_argument("--name", default="", help="What the token is for, e.g. 'theatre system'.")

    def handle(self, *args, username, expires_days, name, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user called {username!r}. Create the user (or service account) first.")
        try:
            token, raw = api_token_create(user=user, name=name, expires_days=expires_days)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        if not roles_of(user):
            self.stderr.write(
                f"Warning: {username} holds no role in any unit yet, so the token will be refused by every "
                "endpoint until a membership is added (Django admin > Users)."
            )
        kind = "service account" if user.is_service_account else "user"
        expiry = f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "does not expire"
        self.stdout.write(f"Token {token.prefix}… for {kind} {username}; {expiry}. It is shown only once:")
        self.stdout.write(raw)
