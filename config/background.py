"""Store on a second database connection while the caller prepares the next batch.

Where Python prepares rows and PostgreSQL stores them (``generate_demo``, the cost
summary refresh), doing one after the other leaves a core of a small server idle.
A ``BackgroundWriter`` runs the storing jobs on a thread with connections of its
own, so PostgreSQL's work overlaps Python's.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from django.db import connections


class BackgroundWriter:
    """Runs jobs one after another on a thread of its own, with its own database connections.

    At most one job waits (a queue of one), so memory stays a couple of batches. A
    failed job stops the work: later jobs are skipped, the next ``put`` raises its
    error, and ``close`` (which waits for every job handed over) raises it too. Jobs
    already done stay done: each commits its own transaction.
    """

    def __init__(self, name: str):
        self._jobs: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                if self.error is not None:
                    continue  # skipped: the caller raises at its next put or at close
                try:
                    job()
                except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
                    self.error = error
        finally:
            connections.close_all()  # this thread's connections only

    def put(self, job: Callable[[], None]) -> None:
        if self.error is not None:
            raise self.error
        self._jobs.put(job)

    def close(self, *, raise_error: bool = True) -> None:
        """Wait for the jobs handed over; raise the error of one that failed (unless told not to)."""
        self._jobs.put(None)
        self._thread.join()
        if raise_error and self.error is not None:
            raise self.error
