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
