"""What every page's layout carries."""

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders

from tests.conftest import login


@pytest.mark.django_db
def test_every_page_names_an_icon_that_exists(client, alice):
    """Without one, browsers ask for /favicon.ico on every page and log a 404."""
    login(client, alice)

    page = client.get("/").content.decode()

    href = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page).group(1)
    assert href.endswith("favicon.svg")
    icon = finders.find("favicon.svg")
    assert icon and Path(icon).read_text(encoding="utf-8").startswith("<svg")
