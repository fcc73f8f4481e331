"""Quoting for the three languages a generated rule file nests: YAML, PromQL and Go templates.

Every value that comes from dbt (source, table and meta values, ``meta.runbook_url``) or from a
flag passes through one of these before it reaches a rule file, so a hostile name (quotes,
backslashes, newlines, ``{{ }}``, ``$1``, unicode) can neither change the PromQL, nor the YAML
structure, nor be executed by Prometheus's template engine.

- :func:`promql_string`: a PromQL double-quoted string literal (Go escaping rules).
- :func:`re2_escape`: a literal for a PromQL ``=~`` matcher (RE2 syntax).
- :func:`go_text`: text placed in a label or annotation, which Prometheus expands as a Go template.
- :func:`yaml_scalar`: a YAML 1.1/1.2 scalar for the rule and test files (the jinja ``yq`` filter).
"""

from __future__ import annotations

import re
from functools import lru_cache

from dbt_prom_bridge.errors import UsageError

_PROMQL_SPECIAL = re.compile(r'[\\"\x00-\x1f\x7f]')
_PROMQL_NAMED = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _promql_char(match: re.Match[str]) -> str:
    char = match.group()
    return _PROMQL_NAMED.get(char) or f"\\x{ord(char):02x}"


def promql_string(value: str) -> str:
    """``value`` as a PromQL double-quoted string literal that reads back as exactly ``value``.

    Backslash and double quote are escaped, control characters written as ``\\n``/``\\xNN``
    (a raw newline ends a PromQL string); any other unicode stays as is (UTF-8).
    """
    return '"' + _PROMQL_SPECIAL.sub(_promql_char, value) + '"'


_RE2_SPECIAL = re.compile(r"[\\.+*?()|\[\]{}^$]")


def re2_escape(value: str) -> str:
    """``value`` as an RE2 pattern matching only itself (Python's ``re.escape`` escapes spaces and
    newlines, which RE2 refuses)."""
    return _RE2_SPECIAL.sub(lambda m: "\\" + m.group(), value)


def go_text(value: str) -> str:
    """Literal text inside a Prometheus label/annotation template.

    Only ``{{`` starts a Go template action; it is written as ``{{ "{{" }}`` so the template
    engine prints it instead of executing what follows. Everything else is literal already.
    """
    return value.replace("{{", '{{ "{{" }}') if "{{" in value else value


def check_text(value: str, what: str) -> str:
    """Refuse text that cannot be written to a rule file (lone surrogates: not UTF-8)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} {value!r} is not valid unicode text (a lone surrogate)") from None
    return value


# --- YAML ---------------------------------------------------------------------------------------
#: Plain (unquoted) scalars: identifier-like words and Prometheus durations. Nothing here can be
#: read as a number, a timestamp, a bool or null, or carry an indicator (``:``, ``#``, ``-``...).
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*|(?:[0-9]+(?:ms|[smhdwy]))+")
#: Words YAML 1.1 (Go's yaml.v2, PyYAML) reads as bools or null.
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
#: Characters that must be escaped, so only a double-quoted scalar can carry them: control
#: characters, C1 (incl. U+0085 NEL), YAML's line/paragraph separators, BOM, non-characters and
#: surrogates. Anything else (e.g. emoji) is printable and may appear raw in any quoted style.
_YAML_ESCAPE = re.compile('[\\\\"\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]')
_YAML_NEEDS_DOUBLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_YAML_NAMED = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\x00": "\\0"}


def _yaml_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _YAML_NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


@lru_cache(maxsize=1 << 16, typed=True)
def yaml_scalar(value: object) -> str:
    """A YAML scalar that every YAML parser reads back as exactly ``value`` (str, int or float).

    Plain when unambiguous, single-quoted when the text has no character needing an escape
    (readable PromQL), otherwise double-quoted with escapes.
    """
    if isinstance(value, bool) or value is None:
        raise TypeError(f"yaml_scalar takes text or numbers, not {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    if not _YAML_NEEDS_DOUBLE.search(text):
        return "'" + text.replace("'", "''") + "'"
    return '"' + _YAML_ESCAPE.sub(_yaml_char, text) + '"'


def comment_text(value: str) -> str:
    """One line of a YAML comment: line breaks and other control characters written visibly."""
    return _YAML_NEEDS_DOUBLE.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) <= 0xFF else "?", value
    )
