"""Schemathesis over the whole committed schema against a live server: no server errors, no schema violations.

Runs the schemathesis CLI (all checks; examples, coverage, fuzzing and stateful
phases) against pytest-django's live server, with an admin's token (every
endpoint open) and a clinician's (scoped data, refusals). Bounded in time by
``--max-examples``; CI runs it on PostgreSQL.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from accounts.services import api_token_create
from tests.api.factories import build_tkr, reason, record_variance, start_episode

pytestmark = [pytest.mark.slow]

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"
MAX_EXAMPLES = 12


@pytest.fixture
def world(transactional_db, org, alice, erin):
    version = build_tkr(org["ORTHO"])
    build_tkr(org["ED"], code="SEPSIS-ED")
    reason()
    episode = start_episode(version, org["ORTHO"], alice)
    record_variance(episode, alice)
    return {"episode": episode}


def run_schemathesis(live_server, token: str, workdir: Path, *, phases: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        str(SCHEMA),
        "--url",
        live_server.url,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--phases",
        phases,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "20251128",
        # One worker: schemathesis's workers share generation state, and a race between them
        # once ended a CI run with an internal "Runtime Error" that no rerun reproduced
        # (upstream has fixed such races one at a time, e.g. in 4.26.2). On SQLite the live
        # server also shares one in-memory connection between its threads.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        # Revoking its own token would end the run early; tests/api/test_tokens.py covers it.
        "--exclude-path-regex",
        "/revoke/$",
        "--report",
        "junit",
        "--report-junit-path",
        str(workdir / "junit.xml"),
    ]
    # Run in a scratch directory: schemathesis keeps its example database in the working directory.
    return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, cwd=workdir)


@pytest.mark.parametrize(
    ("persona", "phases"),
    [
        # The admin reaches every operation: every phase, the coverage phase's boundary values included.
        ("erin", "examples,coverage,fuzzing,stateful"),
        # A clinician meets scoping and refusals; the deterministic coverage phase would repeat erin's.
        ("alice", "examples,fuzzing,stateful"),
    ],
)
def test_it_passes_schemathesis_with_zero_failures(world, live_server, tmp_path, persona, phases, request):
    user = request.getfixturevalue(persona)
    _token, raw = api_token_create(user=user)

    result = run_schemathesis(live_server, raw, tmp_path, phases=phases)

    output = result.stdout + result.stderr
    assert result.returncode == 0, f"schemathesis found problems ({connection.vendor}):\n{problems(output)}"


def problems(output: str, limit: int = 20000) -> str:
    """The report's failures and errors first, then its summary: a CI log that keeps only a part still names the cause."""
    sections = re.split(r"^(?==+ [A-Z ]+ =+$)", output, flags=re.MULTILINE)
    wanted = [part for part in sections if re.match(r"=+ (FAILURES|ERRORS) =+", part)]
    summary = [part for part in sections if re.match(r"=+ SUMMARY =+", part)]
    return "".join(wanted + summary)[:limit] or output[-limit:]
