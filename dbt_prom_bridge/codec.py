"""The one codec of the records: :class:`~dbt_prom_bridge.model.SourceCheck` and
:class:`~dbt_prom_bridge.model.FreshnessRun` <-> plain JSON values.

Used by the spill files, the per-destination state cache, and ``--format json``. It is derived
from the dataclass fields, so a field added to a record is encoded, decoded and shown everywhere
without another edit; only a field of a new *type* needs a converter below.

Two shapes of a check: an object (``check_to_json``: readable, for people and spill files) and a
row (``check_to_row``: the field values in field order, about half the memory to decode, for the
state cache of 100,000 sources). Decoding is tolerant of missing optional fields (an older file)
and raises ``KeyError``/``TypeError``/``ValueError`` on malformed input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, fields
from typing import Any

from dbt_prom_bridge.calendar import Calendar, parse_calendar
from dbt_prom_bridge.errors import CalendarError, ThresholdError
from dbt_prom_bridge.model import FreshnessRun, SourceCheck, Status, Threshold
from dbt_prom_bridge.nodes import BuildStatus, ModelCheck

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


def _opt(convert: Decoder) -> Decoder:
    return lambda raw: None if raw is None else convert(raw)


def _number(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise TypeError(f"{raw!r} is not a number")
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"{raw!r} is not a finite number")
    return value


def _threshold(raw: Any) -> Threshold:
    if isinstance(raw, Mapping):
        count, period = raw["count"], raw["period"]
    else:
        count, period = raw
    try:
        parsed = Threshold.parse({"count": count, "period": period})
    except ThresholdError as exc:
        raise ValueError(str(exc)) from None
    if parsed is None:
        raise ValueError("threshold without count and period")
    return parsed


def _calendar(raw: Any) -> Calendar:
    try:
        return parse_calendar(raw, "?")
    except CalendarError as exc:
        raise ValueError(str(exc)) from None


def _pairs(raw: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in raw)


def _strings(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        raise TypeError("a list of strings, not a string")
    return tuple(str(v) for v in raw)


def _bool(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise TypeError(f"{raw!r} is not true or false")
    return raw


#: Field type (as the dataclass annotation spells it) -> (encode, decode).
_TYPES: Mapping[str, tuple[Encoder, Decoder]] = {
    "str": (lambda v: v, str),
    "str | None": (lambda v: v, _opt(str)),
    "float | None": (lambda v: v, _opt(_number)),
    "bool": (lambda v: v, _bool),
    "bool | None": (lambda v: v, _opt(_bool)),
    "Status": (lambda v: v.value, Status),
    "Status | None": (lambda v: None if v is None else v.value, _opt(Status)),
    "BuildStatus | None": (lambda v: None if v is None else v.value, _opt(BuildStatus)),
    "Threshold | None": (lambda v: None if v is None else [v.count, v.period], _opt(_threshold)),
    "tuple[str, ...]": (list, _strings),
    "tuple[tuple[str, str], ...]": (lambda v: [list(kv) for kv in v], _pairs),
    "Calendar | None": (lambda v: None if v is None else v.as_dict(), _opt(_calendar)),
}


def _codec(cls: type, skip: tuple[str, ...] = ()) -> tuple[tuple[str, Encoder, Decoder, bool], ...]:
    out = []
    for f in fields(cls):
        if f.name in skip:
            continue
        encode, decode = _TYPES[str(f.type)]
        required = f.default is MISSING and f.default_factory is MISSING
        out.append((f.name, encode, decode, required))
    return tuple(out)


_CHECK = _codec(SourceCheck)
_RUN = _codec(FreshnessRun, skip=("checks", "unchecked", "models"))
_MODEL = _codec(ModelCheck)
_DECODERS = tuple(decode for _n, _e, decode, _r in _CHECK)


def check_to_json(check: SourceCheck) -> dict[str, Any]:
    return {name: encode(getattr(check, name)) for name, encode, _d, _r in _CHECK}


def _decoded(
    fields: tuple[tuple[str, Encoder, Decoder, bool], ...], raw: Mapping[str, Any]
) -> dict[str, Any]:
    """The keyword arguments of a record from its JSON object (a missing required field: KeyError)."""
    kwargs = {}
    for name, _e, decode, required in fields:
        if name in raw:
            kwargs[name] = decode(raw[name])
        elif required:
            raise KeyError(name)
    return kwargs


def check_from_json(raw: Mapping[str, Any]) -> SourceCheck:
    return SourceCheck(**_decoded(_CHECK, raw))


def model_to_json(check: ModelCheck) -> dict[str, Any]:
    """A model record as an object (unset values left out: most models carry half of them)."""
    out = {}
    for name, encode, _d, required in _MODEL:
        value = getattr(check, name)
        if required or value not in (None, ()):
            out[name] = encode(value)
    return out


def model_from_json(raw: Mapping[str, Any]) -> ModelCheck:
    return ModelCheck(**_decoded(_MODEL, raw))


def check_to_row(check: SourceCheck) -> list[Any]:
    return [encode(getattr(check, name)) for name, encode, _d, _r in _CHECK]


def check_from_row(row: Sequence[Any]) -> SourceCheck:
    if isinstance(row, (str, Mapping)) or len(row) > len(_CHECK):
        raise ValueError("not a check row")
    if len(row) == len(_CHECK):  # the usual case: positional, no keyword dict (100,000 rows)
        return SourceCheck(*[decode(value) for decode, value in zip(_DECODERS, row, strict=True)])
    kwargs = {}
    for (name, _e, decode, _r), value in zip(_CHECK, row, strict=False):
        kwargs[name] = decode(value)
    missing = [name for name, _e, _d, required in _CHECK[len(row) :] if required]
    if missing:
        raise KeyError(missing[0])
    return SourceCheck(**kwargs)


def run_to_json(run: FreshnessRun, rows: bool = False) -> dict[str, Any]:
    """Every field of ``run`` as JSON values; checks as objects, or as rows (``rows=True``)."""
    one = check_to_row if rows else check_to_json
    out: dict[str, Any] = {name: encode(getattr(run, name)) for name, encode, _d, _r in _RUN}
    if rows:
        out["check_fields"] = [name for name, *_ in _CHECK]
    out["checks"] = [one(c) for c in run.checks]
    out["unchecked"] = [one(c) for c in run.unchecked]
    if run.models:
        out["models"] = [model_to_json(m) for m in run.models]
    return out


def run_from_json(raw: Mapping[str, Any]) -> FreshnessRun:
    """The inverse of :func:`run_to_json` (either shape of checks)."""
    kwargs = _decoded(_RUN, raw)
    if "check_fields" in raw:
        if list(raw["check_fields"]) != [name for name, *_ in _CHECK][: len(raw["check_fields"])]:
            raise ValueError("check rows of another field layout")
        one: Callable[[Any], SourceCheck] = check_from_row
    else:
        one = check_from_json
    kwargs["checks"] = tuple(one(c) for c in raw["checks"])
    kwargs["unchecked"] = tuple(one(c) for c in raw.get("unchecked", ()))
    kwargs["models"] = tuple(model_from_json(m) for m in raw.get("models", ()))
    return FreshnessRun(**kwargs)
