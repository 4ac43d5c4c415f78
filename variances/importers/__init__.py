"""Import of hospital event data (XES and CSV) onto a pathway.

- ``readers``: streaming XES/CSV readers (constant memory);
- ``mapping``: the JSON mapping of source activities to step codes, validated;
- ``loader``: episodes, events, outcomes and detection in bulk, idempotently.

Entry points: ``manage.py import_events`` and the admins' browser import
(``variances/import_views.py``, task ``variances.import_events``).
"""

from .loader import ImportFailed, ImportSummary, import_events, patient_ref_for
from .mapping import Mapping, MappingError, load_mapping, parse_mapping, parse_mapping_text
from .readers import Problem, SourceFormatError

__all__ = [
    "ImportFailed",
    "ImportSummary",
    "Mapping",
    "MappingError",
    "Problem",
    "SourceFormatError",
    "import_events",
    "load_mapping",
    "parse_mapping",
    "parse_mapping_text",
    "patient_ref_for",
]
