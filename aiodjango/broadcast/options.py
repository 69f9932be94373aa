"""The ``AIODJANGO_BROADCAST`` setting: its shape, its defaults, and what is wrong with it.

Shaped like ``CACHES``: aliases mapping to ``BACKEND``, ``LOCATION`` and
``OPTIONS``. :func:`problems` lists what is wrong (the system checks
``aiodjango.E050``-``E053`` report it); backends raise
``ImproperlyConfigured`` with the same words when built from a bad entry.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

from django.utils.module_loading import import_string

SETTING = "AIODJANGO_BROADCAST"
MEMORY_BACKEND = "aiodjango.broadcast.backends.memory.MemoryBroadcast"
REDIS_BACKEND = "aiodjango.broadcast.backends.redis.RedisBroadcast"
DEFAULT_SETTING = {"default": {"BACKEND": MEMORY_BACKEND}}
ENTRY_KEYS = ("BACKEND", "LOCATION", "OPTIONS")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return _is_int(value) and value >= 1


def _seconds(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _encoder(value: Any) -> bool:
    try:
        cls = import_string(value) if isinstance(value, str) else value
    except ImportError:
        return False
    return isinstance(cls, type) and issubclass(cls, json.JSONEncoder)


def _prefix(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 100


class Option(NamedTuple):
    default: Any
    valid: Callable[[Any], bool]
    expected: str


#: Options every backend takes.
COMMON_OPTIONS: dict[str, Option] = {
    "QUEUE_SIZE": Option(100, _positive_int, "a positive number of messages, e.g. 100"),
    "OVERFLOW": Option(
        "disconnect", lambda v: v in ("disconnect", "drop"), "'disconnect' or 'drop'"
    ),
    "MAX_MESSAGE_SIZE": Option(
        1024 * 1024, _positive_int, "a positive number of bytes, e.g. 1024 * 1024"
    ),
    "ENCODER": Option(
        "json.JSONEncoder",
        _encoder,
        "the dotted path of a json.JSONEncoder subclass, e.g. "
        "'django.core.serializers.json.DjangoJSONEncoder'",
    ),
    "TIMEOUT": Option(5.0, _seconds, "a positive number of seconds, e.g. 5"),
}

#: Options of the Redis backend, on top of the common ones.
REDIS_OPTIONS: dict[str, Option] = {
    "PREFIX": Option("aiodjango:", _prefix, "a string of at most 100 characters"),
    "MAX_CONNECTIONS": Option(10, _positive_int, "a positive number, e.g. 10"),
    "HEALTH_CHECK_INTERVAL": Option(15.0, _seconds, "a positive number of seconds, e.g. 15"),
    "RETRY_MAX_DELAY": Option(5.0, _seconds, "a positive number of seconds, e.g. 5"),
}


@dataclass(frozen=True)
class Settings:
    """One alias's validated entry: what a backend is built from."""

    alias: str
    location: Optional[str]
    options: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.options[name]


class Problem(NamedTuple):
    """Something wrong with the setting: the check id, what is wrong, how to fix it."""

    id: str
    message: str
    hint: str


def configured() -> dict[str, Any]:
    """The setting as given (the default when it isn't set)."""
    from ..conf import conf

    value = conf.AIODJANGO_BROADCAST
    return DEFAULT_SETTING if value is None else value


def where(alias: str, *keys: str) -> str:
    return SETTING + "".join(f"[{key!r}]" for key in (alias, *keys))


def problems(value: Any = None) -> list[Problem]:
    """Everything wrong with ``value`` (default: the ``AIODJANGO_BROADCAST`` setting)."""
    if value is None:
        value = configured()
    if not isinstance(value, dict) or not value:
        return [
            Problem(
                "aiodjango.E050",
                f"{SETTING} must be a dict of broadcast aliases, got {value!r}.",
                f"Set {SETTING} = {{'default': {{'BACKEND': {MEMORY_BACKEND!r}}}}}, "
                f"or remove it for that default.",
            )
        ]
    found: list[Problem] = []
    if "default" not in value:
        found.append(
            Problem(
                "aiodjango.E050",
                f"{SETTING} has no 'default' alias (it has {', '.join(map(repr, value))}).",
                "Add a 'default' entry: publish() and subscribe() use it unless given using=.",
            )
        )
    for alias, entry in value.items():
        found.extend(entry_problems(alias, entry))
    return found


def entry_problems(alias: Any, entry: Any) -> list[Problem]:
    if not isinstance(alias, str) or not isinstance(entry, dict):
        return [
            Problem(
                "aiodjango.E050",
                f"{SETTING}[{alias!r}] must be a dict with 'BACKEND' (and 'LOCATION', "
                f"'OPTIONS'), got {entry!r}.",
                f"For example {SETTING} = {{'default': {{'BACKEND': {REDIS_BACKEND!r}, "
                f"'LOCATION': 'redis://127.0.0.1:6379/0'}}}}.",
            )
        ]
    found: list[Problem] = []
    unknown = [key for key in entry if key not in ENTRY_KEYS]
    if unknown:
        found.append(
            Problem(
                "aiodjango.E050",
                f"{where(alias)} has unknown keys: {', '.join(map(repr, unknown))}.",
                "An entry takes 'BACKEND', 'LOCATION' and 'OPTIONS' (options go in 'OPTIONS').",
            )
        )
    backend = entry.get("BACKEND", MEMORY_BACKEND)
    cls = None
    try:
        cls = import_string(backend)
    except ImportError as exc:
        found.append(
            Problem(
                "aiodjango.E051",
                f"{where(alias, 'BACKEND')} = {backend!r} cannot be imported: {exc}",
                f"Use {MEMORY_BACKEND!r} (one process) or {REDIS_BACKEND!r} (several "
                f"processes or machines).",
            )
        )
    except Exception as exc:  # not a dotted path at all
        found.append(
            Problem(
                "aiodjango.E051",
                f"{where(alias, 'BACKEND')} must be a dotted path, got {backend!r} ({exc}).",
                f"Use {MEMORY_BACKEND!r} or {REDIS_BACKEND!r}.",
            )
        )
    if cls is not None:
        from .base import Broadcast

        if not (isinstance(cls, type) and issubclass(cls, Broadcast)):
            found.append(
                Problem(
                    "aiodjango.E051",
                    f"{where(alias, 'BACKEND')} = {backend!r} is not a broadcast backend "
                    f"(a subclass of aiodjango.broadcast.base.Broadcast).",
                    f"Use {MEMORY_BACKEND!r} or {REDIS_BACKEND!r}.",
                )
            )
            cls = None
    if cls is not None:
        found.extend(backend_problems(alias, entry, cls))
    return found


def backend_problems(alias: str, entry: dict, cls: Any) -> list[Problem]:
    """What is wrong with the ``OPTIONS`` and ``LOCATION`` of ``entry`` for backend ``cls``."""
    found = []
    options = entry.get("OPTIONS", {})
    if not isinstance(options, dict):
        found.append(
            Problem(
                "aiodjango.E052",
                f"{where(alias, 'OPTIONS')} must be a dict, got {options!r}.",
                "Remove it, or give a dict such as {'QUEUE_SIZE': 100}.",
            )
        )
    else:
        found.extend(option_problems(alias, cls.option_specs(), options))
    for message, hint in cls.location_problems(alias, entry.get("LOCATION")):
        found.append(Problem("aiodjango.E053", message, hint))
    return found


def option_problems(alias: str, specs: dict[str, Option], options: dict) -> list[Problem]:
    found = []
    for name, value in options.items():
        spec = specs.get(name)
        if spec is None:
            found.append(
                Problem(
                    "aiodjango.E052",
                    f"{where(alias, 'OPTIONS')} has the unknown option {name!r}.",
                    f"This backend takes {', '.join(specs)}.",
                )
            )
        elif not spec.valid(value):
            found.append(
                Problem(
                    "aiodjango.E052",
                    f"{where(alias, 'OPTIONS', name)} must be {spec.expected}, got {value!r}.",
                    f"Set it to {spec.expected.split(', e.g. ')[-1]}, or remove it for the "
                    f"default ({spec.default!r}).",
                )
            )
    return found


def settings_for(alias: str, entry: dict, cls: Any) -> Settings:
    """The validated settings of ``alias`` for backend ``cls``, defaults filled in.

    ``ImproperlyConfigured`` (with the system check's words) when they are wrong.
    """
    from django.core.exceptions import ImproperlyConfigured

    wrong = backend_problems(alias, entry, cls) if isinstance(entry, dict) else entry_problems(alias, entry)
    if wrong:
        raise ImproperlyConfigured(describe(wrong[0]))
    given = entry.get("OPTIONS", {})
    specs = cls.option_specs()
    options = {name: given.get(name, spec.default) for name, spec in specs.items()}
    encoder = options["ENCODER"]
    options["ENCODER"] = import_string(encoder) if isinstance(encoder, str) else encoder
    return Settings(alias, entry.get("LOCATION"), options)


def describe(problem: Problem) -> str:
    """One problem as an exception message: what is wrong, the fix, the check id."""
    message = problem.message if problem.message.endswith(".") else problem.message + "."
    return f"{message} {problem.hint} ({problem.id})"
