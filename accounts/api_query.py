"""Query parameters the API documents, and a refusal of any other.

A misspelt filter (``?stauts=unexplained``) must not answer every variance as if it
had been applied: an integration would act on the wrong records without a word. Each
endpoint therefore takes the query parameters its OpenAPI operation lists and no
others, each once. The list is read from the schema drf-spectacular generates (the
same one served at ``/api/schema/``), so what is documented and what is accepted
cannot drift apart. It is built once per process, on the first API request.
"""

from __future__ import annotations

import functools
import threading

from rest_framework import exceptions

_building = threading.Lock()


def documented_query_parameters() -> dict[tuple[object, str], frozenset[str]]:
    """``{(URL callback, method): names}`` for every operation in the public schema.

    Built once per process. drf-spectacular's generator is not safe to run in several
    threads at once (a threaded server's first requests would), hence the lock.
    """
    with _building:
        return _build()


@functools.cache
def _build() -> dict[tuple[object, str], frozenset[str]]:
    from drf_spectacular.generators import SchemaGenerator

    generator = SchemaGenerator()
    schema = generator.get_schema(request=None, public=True)
    documented = {}
    for path, _regex, method, callback in generator.endpoints:
        view = generator.create_view(callback, method)
        operation = schema["paths"].get(generator.coerce_path(path, method, view), {}).get(method.lower())
        if operation is not None:
            parameters = operation.get("parameters", [])
            documented[callback, method] = frozenset(p["name"] for p in parameters if p["in"] == "query")
    return documented


def check_query_parameters(request) -> None:
    """400 naming each query parameter the endpoint does not take, or takes once but was given twice."""
    match = request.resolver_match
    method = "GET" if request.method == "HEAD" else request.method
    accepted = documented_query_parameters().get((match.func, method)) if match else None
    if accepted is None:  # not a documented operation (OPTIONS; views left out of the schema)
        return
    takes = f"This endpoint takes: {', '.join(sorted(accepted))}." if accepted else "This endpoint takes none."
    errors = {}
    for name in request.query_params:
        if name not in accepted:
            errors[name] = [f"Unknown query parameter. {takes}"]
        elif len(request.query_params.getlist(name)) > 1:
            errors[name] = ["Give this parameter once."]
    if errors:
        raise exceptions.ValidationError(errors)
