"""Small helpers the client scripts beside it share (not run on its own; a script's own folder
leads `sys.path`, so `from _script import ...` finds it).
"""

from __future__ import annotations


def parse_headers(pairs: list[str]) -> dict[str, str]:
    """`--header "Name: value"` values as a dict (a value without `:` is a name with "")."""
    headers: dict[str, str] = {}
    for pair in pairs:
        name, _, value = pair.partition(":")
        headers[name.strip()] = value.strip()
    return headers


def describe(exc: BaseException) -> str:
    """An exception (exception groups flattened) as one line."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"
