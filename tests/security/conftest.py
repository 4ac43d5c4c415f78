import io
import logging

import pytest


@pytest.fixture
def log_output():
    """Everything logged during the test, formatted exactly as the configured console handler does."""
    console = next(h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(console.formatter)
    for log_filter in console.filters:
        handler.addFilter(log_filter)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # the strictest case: everything any library would log
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
