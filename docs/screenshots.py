"""Take the README's screenshots from a running CommonPath with the demo data loaded.

    .venv/bin/python manage.py load_demo      # once, on the database the server uses
    .venv/bin/python manage.py runserver 127.0.0.1:8000 &
    .venv/bin/python docs/screenshots.py [--base-url http://127.0.0.1:8000]

Uses Debian's chromium through Playwright (no browser download) and writes PNGs to
docs/screenshots/, each signed in as the demo person who would look at that page.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

OUT = Path(__file__).resolve().parent / "screenshots"
PASSWORD = os.environ.get("DEMO_PASSWORD", "commonpath-demo")


def sign_in(page: Page, base: str, username: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def shoot(page: Page, base: str, path: str, name: str, *, full_page: bool = False) -> None:
    response = page.goto(f"{base}{path}")
    if response is None or response.status != 200:
        raise SystemExit(f"{path} answered {response and response.status}: is the demo loaded?")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / f"{name}.png", full_page=full_page)
    print(f"docs/screenshots/{name}.png  <- {path}")


def first_link(page: Page, base: str, path: str, pattern: str) -> str:
    page.goto(f"{base}{path}")
    for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))"):
        if re.fullmatch(pattern, href or ""):
            return href
    raise SystemExit(f"no link matching {pattern} on {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    base = args.base_url.rstrip("/")
    OUT.mkdir(exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("Install Debian's chromium (apt-get install chromium).")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})

        sign_in(page, base, "clinician")
        shoot(page, base, "/", "home-clinician")
        shoot(page, base, "/variances/", "my-work")
        episode = first_link(page, base, "/variances/", r"/variances/episodes/\d+/")
        shoot(page, base, episode, "episode-timeline")
        shoot(page, base, f"{episode}variances/new/", "record-variance")
        # A hip fracture whose surgery was repeated (a return to theatre): the cost lens explains each line.
        repeat = first_link(
            page, base, "/variances/episodes/?status=completed&q=DEMO-HIP-0178", r"/variances/episodes/\d+/"
        )
        shoot(page, base, f"/costing/episodes/{repeat.strip('/').split('/')[-1]}/cost/", "episode-cost", full_page=True)

        sign_in(page, base, "lead")
        shoot(page, base, "/variances/review/", "review-queue")
        shoot(page, base, "/pathways/TKR/v1/", "pathway-version")
        shoot(page, base, "/pathways/HIP-FRACTURE/v2/diff/1/", "version-diff")
        shoot(page, base, "/costing/dashboard/?unit=ORTHO&lens=variance", "dashboard-clinical-lens")

        sign_in(page, base, "manager")
        shoot(page, base, "/costing/dashboard/?unit=SURG&lens=cost", "dashboard-cost-lens")

        sign_in(page, base, "finance")
        shoot(page, base, "/costing/resources/", "resources-and-rates")

        mobile = browser.new_page(viewport={"width": 360, "height": 740}, is_mobile=True)
        sign_in(mobile, base, "clinician")
        shoot(mobile, base, "/variances/", "my-work-phone")
        browser.close()


if __name__ == "__main__":
    main()
