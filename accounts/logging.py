import logging

from .context import current_request_context


class RequestIdFilter(logging.Filter):
    """Stamp each log record with the request's correlation id, and keep one record one line.

    CR/LF in user input must not forge a second log line, so they are escaped here.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_context().request_id or "-"
        if isinstance(record.msg, str) and not record.args:
            record.msg = record.msg.replace("\r", "\\r").replace("\n", "\\n")
        elif record.args:
            try:
                message = record.getMessage()
            except Exception:  # a malformed format string must not lose the record
                message = str(record.msg)
            record.msg = message.replace("\r", "\\r").replace("\n", "\\n")
            record.args = None
        return True


class ContinuationFormatter(logging.Formatter):
    """Mark every continuation line (a traceback, say) with ``  | ``.

    The filter above keeps a message on one line; an exception's text can still
    carry user input with line breaks into the traceback. Indenting every
    continuation line means no line that is not a record's first can start with
    a timestamp, so nothing can pass for a log record of its own.
    """

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\r", "\\r").replace("\n", "\n  | ")
