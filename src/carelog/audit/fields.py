"""Which field names hold values that must never enter the log in clear.

Callers spell one meaning many ways: ``guestEmail`` (JavaScript-era code and JSON payloads),
``guest_email`` (Python), ``guest-email`` (headers, form fields), ``GUEST_EMAIL`` (constants),
or a nested ``{"guest": {"email": ...}}``. A lower-cased exact comparison with snake_case names
lets all but one of these through, so a key is first reduced to its words
(:func:`field_words`) and then judged by meaning:

* its canonical snake_case form is a sensitive name (``guestNotes`` → ``guest_notes``);
* its trailing words are one (``clinicalNotes`` → ``notes``, ``contactEmail`` → ``email``,
  ``x-api-key`` → ``api_key``, ``patientDateOfBirth`` → ``date_of_birth``), so a qualifier in
  front of a sensitive noun does not hide it, while a flag *about* the value (``contentProvided``,
  ``emailSent``) is not masked;
* nested under a parent key, ``<parent word>_<key>`` is one (``{"guest": {"name": ...}}`` →
  ``guest_name``): a bare ``name`` is kept (an event type's name is not personal) unless its
  parent says whose name it is.

The catalog supplies the names (the audit core knows no healthcare words); the rules are here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_HUMPS = re.compile(r"([a-z0-9])([A-Z])")
_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")
_CACHE_LIMIT = 4096  # keys come from code, so a few hundred in practice; bounded for imports


def field_words(key: str) -> tuple[str, ...]:
    """``guestEmail``, ``guest-email``, ``GUEST EMAIL`` → ``('guest', 'email')``."""
    spaced = _ACRONYM.sub(r"\1_\2", _HUMPS.sub(r"\1_\2", key))
    return tuple(w for w in _SEPARATORS.split(spaced.lower()) if w)


def canonical_field(key: str) -> str:
    """The snake_case form of a key, whatever its case or style."""
    return "_".join(field_words(key))


class FieldClassifier:
    """Decides, per key (and its parent key), whether the value is sensitive. Cached."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(c for c in (canonical_field(n) for n in names) if c)
        self._flat: dict[str, bool] = {}
        self._nested: dict[tuple[str, str], bool] = {}

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.is_sensitive(key)

    def is_sensitive(self, key: str, parent: str | None = None) -> bool:
        if parent is not None:
            hit = self._nested.get((parent, key))
            if hit is None:
                hit = self._judge(key) or self._judge_under(parent, key)
                if len(self._nested) < _CACHE_LIMIT:
                    self._nested[(parent, key)] = hit
            return hit
        flat = self._flat.get(key)
        if flat is None:
            flat = self._judge(key)
            if len(self._flat) < _CACHE_LIMIT:
                self._flat[key] = flat
        return flat

    def _judge(self, key: str) -> bool:
        words = field_words(key)
        if not words:
            return False
        names = self.names
        return any("_".join(words[i:]) in names for i in range(len(words)))

    def _judge_under(self, parent: str, key: str) -> bool:
        own = canonical_field(key)
        return bool(own) and any(f"{word}_{own}" in self.names for word in field_words(parent))


__all__ = ["FieldClassifier", "canonical_field", "field_words"]
