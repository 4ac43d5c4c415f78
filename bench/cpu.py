"""CPU seconds used by this process and by its PostgreSQL backend (Linux), for the import benchmarks.

On a shared machine wall-clock time mostly measures the other processes. The CPU
time the import itself needed (Python here + the database server process that
served its connection) is what it would take on an idle machine, give or take
disk waits: the two processes work in turn, not at once.
"""

import os
import resource


def _ticks_to_seconds(ticks: int) -> float:
    return ticks / os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int | None) -> float | None:
    """utime + stime of a process from /proc, in seconds (None where /proc is not readable)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return _ticks_to_seconds(int(fields[11]) + int(fields[12]))


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def backend_pid(connection) -> int | None:
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]
