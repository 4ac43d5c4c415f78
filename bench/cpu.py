"""CPU seconds used by this process and by its PostgreSQL backend (Linux), and time spent in functions, for the import benchmarks.

On a shared machine wall-clock time mostly measures the other processes. The CPU
time the import itself needed (Python here + the database server process that
served its connection) is what it would take on an idle machine, give or take
disk waits: the two processes work in turn, not at once.
"""

import os
import resource
import time


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


def backend_peak_kb(pid: int | None) -> int | None:
    """Peak resident memory of a process (VmHWM) from /proc, in KB (None where not readable)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def backend_pid(connection) -> int | None:
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


class Timed:
    """Wraps functions and adds up the time spent in any of them (``wrappers``, in the order given).

    Calling the instance calls the first function.
    """

    def __init__(self, *functions):
        self.seconds = 0.0
        self.wrappers = [self._timed(function) for function in functions]

    def _timed(self, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed

    def __call__(self, *args, **kwargs):
        return self.wrappers[0](*args, **kwargs)
