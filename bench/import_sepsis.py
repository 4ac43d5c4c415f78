"""Import + detection of the whole 4TU Sepsis Cases log (15,214 events); target: under 3 s on PostgreSQL.

Runs against a throw-away test database (``test_<name>`` of DATABASE_URL, or
SQLite), never against your data. The log is read from SHARED_DATA_DIR or
../shared/data:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/commonpath .venv/bin/python bench/import_sepsis.py

Prints where the time goes (reading the file, writing episodes and events,
detection), then the figures last.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import cpu  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment, teardown_test_environment  # noqa: E402

TARGET_SECONDS = 3.0


def read_only(path) -> tuple[int, float]:
    from variances.importers.readers import open_source, read_source

    started = time.perf_counter()
    opened = open_source(path)
    try:
        events = sum(len(case.events) for case in read_source(opened))
    finally:
        opened.close()
    return events, time.perf_counter() - started


def main() -> int:
    from demo import org, sepsis
    from variances.importers import import_events, load_mapping, loader

    path = sepsis.sepsis_log_path()
    if not path.exists():
        print(f"The 4TU Sepsis Cases log is not at {path} (set SHARED_DATA_DIR).")
        return 2
    setup_test_environment(debug=False)  # as in production: no query log
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        units = org.load_org()
        version = sepsis.build_pathway(owner_unit=units["ED"])
        mapping = load_mapping(sepsis.MAPPING_PATH)
        events, read_seconds = read_only(path)

        pid = cpu.backend_pid(connection)
        python_before, server_before = cpu.own_cpu(), cpu.backend_cpu(pid)
        detection = cpu.Timed(loader.evaluate_episodes, loader.evaluate_new_episodes)
        writing = cpu.Timed(loader.Importer.write)
        loader.evaluate_episodes, loader.evaluate_new_episodes = detection.wrappers
        loader.Importer.write = lambda self, batch: writing(self, batch)
        summary = import_events(
            path, mapping=mapping, pathway_code=version.pathway.code, org_unit=units["ED"], closed=True
        )
        python_cpu, server_after = cpu.own_cpu() - python_before, cpu.backend_cpu(pid)
        again = import_events(
            path, mapping=mapping, pathway_code=version.pathway.code, org_unit=units["ED"], closed=True
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()

    assert summary.committed and summary.events_read == events == 15_214, summary.lines()
    print(f"database: {connection.vendor}")
    print(f"reading and parsing the file alone: {read_seconds:.2f} s")
    print(
        f"first import: {summary.seconds:.2f} s = reading, mapping and hashing "
        f"{summary.seconds - writing.seconds:.2f} s + writing {writing.seconds - detection.seconds:.2f} s "
        f"+ detection {detection.seconds:.2f} s ({sum(summary.variances.values()):,} variances)"
    )
    print(f"second import of the same file (nothing new): {again.seconds:.2f} s, {again.events_created} events created")
    if server_before is not None and server_after is not None:
        server_cpu = server_after - server_before
        print(
            f"CPU time of the first import: Python {python_cpu:.2f} s + PostgreSQL backend {server_cpu:.2f} s "
            f"= {python_cpu + server_cpu:.2f} s (about the wall time on an idle machine)"
        )
    verdict = "OK" if summary.seconds < TARGET_SECONDS else "TOO SLOW"
    print(
        f"import_sepsis: {summary.events_read:,} events, {summary.episodes_created:,} episodes imported and evaluated "
        f"in {summary.seconds:.2f} s = {summary.events_per_second:,.0f} events per second "
        f"({verdict}, target < {TARGET_SECONDS:.0f} s)"
    )
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
