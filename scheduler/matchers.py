"""Matchers: which workers may take a task, and which of those are preferred.

A matcher turns a caller's ``preference`` into a :class:`Query` of two hashable keys:

* ``hard`` — a filter a worker must pass (ISP, video codecs, analytics algorithm);
  ``None`` means no filter.
* ``soft`` — a preference (region): when at least one candidate passing ``hard`` also passes
  ``soft``, only those are used; otherwise all candidates passing ``hard`` are.
  ``None`` means no preference.

The scheduler keeps one candidate pool per distinct ``(hard, None)`` and ``(hard, soft)`` key, so a
key must say exactly who belongs (:meth:`Matcher.accepts` / :meth:`Matcher.prefers`), whatever
workers come and go.  To keep the number of pools bounded, :meth:`Matcher.query` folds values that
no registered worker declares (``known`` is the vocabulary from :meth:`Matcher.terms`) into
sentinels with the same meaning.

A preference that is missing, ``None``, not a mapping, or has fields of the wrong type never
raises: the malformed part is treated as "no preference".  Note that OWT treated a missing
``isp`` as "only workers that accept any ISP"; here it means "no ISP constraint".

Rules by purpose (:data:`MATCHER_FOR_PURPOSE`, OWT §2.2.5):

* ``isp-region`` (portal, webrtc, streaming, audio, quic): ``preference = {isp, region}``; worker
  ``info.capacity = {isps: [...], regions: [...]}``.  A worker passes the ISP filter if its
  ``isps`` is empty or contains the ISP; region is the soft preference.
* ``video``: ``preference = {video: {encode: [...], decode: [...]}, isp, region}``; a worker must
  list *every* requested format in ``capacity.video.encode`` / ``decode`` (formats compared
  case-insensitively; ``{codec, profile}`` objects become ``"codec_profile"``), then the ISP/region
  rule applies.
* ``analytics``: ``preference = {algorithm}``; the worker's ``capacity.algorithms`` must list it.
* ``general`` (conference, recording, sip and any other purpose): no filter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Container, Hashable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Final

from .errors import InvalidArgument
from .records import Capacity, normalize_codec

__all__ = [
    "Query",
    "Matcher",
    "GeneralMatcher",
    "IspRegionMatcher",
    "VideoMatcher",
    "AnalyticsMatcher",
    "MATCHERS",
    "MATCHER_FOR_PURPOSE",
    "matcher_for",
    "create_matcher",
    "NOTHING",
    "UNLISTED",
]


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: A hard key no worker passes (e.g. a codec or algorithm no registered worker lists).
NOTHING: Final = _Sentinel("NOTHING")
#: An ISP no registered worker lists: only workers that accept any ISP pass.
UNLISTED: Final = _Sentinel("UNLISTED")


@dataclass(frozen=True, slots=True)
class Query:
    """A preference, canonicalised: ``hard`` filter key and ``soft`` preference key."""

    hard: Hashable = None
    soft: Hashable = None


_NO_QUERY: Final = Query()


class Matcher(ABC):
    """Turns a preference into a :class:`Query` and tells which workers pass it."""

    name: ClassVar[str]

    @abstractmethod
    def query(self, preference: object, known: Container[Hashable]) -> Query:
        """The canonical query for ``preference``; ``known`` holds every worker's :meth:`terms`."""

    def accepts(self, hard: Hashable, capacity: Capacity) -> bool:
        """Does a worker with ``capacity`` pass the hard filter ``hard``? (``None``: yes.)"""
        return hard is None

    def prefers(self, soft: Hashable, capacity: Capacity) -> bool:
        """Does a worker with ``capacity`` match the soft preference ``soft``?"""
        return False

    def terms(self, capacity: Capacity) -> Iterable[Hashable]:
        """The vocabulary a worker contributes (values that :meth:`query` may keep as is)."""
        return ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GeneralMatcher(Matcher):
    """No filter, no preference."""

    name = "general"

    def query(self, preference: object, known: Container[Hashable]) -> Query:
        return _NO_QUERY


def _field(preference: object, key: str) -> object:
    return preference.get(key) if isinstance(preference, Mapping) else None


class IspRegionMatcher(Matcher):
    """ISP as a hard filter (empty ``isps`` accepts any), region as a soft preference."""

    name = "isp-region"

    def query(self, preference: object, known: Container[Hashable]) -> Query:
        if not isinstance(preference, Mapping):
            return _NO_QUERY
        return Query(self.isp_key(preference, known), self.region_key(preference, known))

    @staticmethod
    def isp_key(preference: object, known: Container[Hashable]) -> Hashable:
        """The hard key for ``preference['isp']``: the ISP, :data:`UNLISTED` or ``None``."""
        isp = _field(preference, "isp")
        if not isinstance(isp, str):
            return None
        return isp if ("isp", isp) in known else UNLISTED

    @staticmethod
    def region_key(preference: object, known: Container[Hashable]) -> Hashable:
        """The soft key for ``preference['region']``, or ``None`` if no worker lists it."""
        region = _field(preference, "region")
        if isinstance(region, str) and ("region", region) in known:
            return region
        return None

    def accepts(self, hard: Hashable, capacity: Capacity) -> bool:
        if hard is None:
            return True
        if not capacity.isps:
            return True
        return hard in capacity.isps  # UNLISTED is never in a set of strings

    def prefers(self, soft: Hashable, capacity: Capacity) -> bool:
        return soft in capacity.regions

    def terms(self, capacity: Capacity) -> Iterable[Hashable]:
        yield from (("isp", isp) for isp in capacity.isps)
        yield from (("region", region) for region in capacity.regions)


def _codecs(value: object) -> frozenset[str] | None:
    """The requested formats, or ``None`` if the request is malformed (treated as no request)."""
    if value is None:
        return frozenset()
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return None
    codecs = [normalize_codec(v) for v in value]
    return frozenset(c for c in codecs if c is not None)


class VideoMatcher(Matcher):
    """Every requested encode/decode format must be supported; then the ISP/region rule."""

    name = "video"

    def __init__(self) -> None:
        self._isp = IspRegionMatcher()

    def query(self, preference: object, known: Container[Hashable]) -> Query:
        if not isinstance(preference, Mapping):
            return _NO_QUERY
        isp = self._isp.isp_key(preference, known)
        region = self._isp.region_key(preference, known)
        video = preference.get("video")
        encode = _codecs(video.get("encode")) if isinstance(video, Mapping) else frozenset()
        decode = _codecs(video.get("decode")) if isinstance(video, Mapping) else frozenset()
        encode = encode or frozenset()
        decode = decode or frozenset()
        if any(("encode", c) not in known for c in encode) or any(
            ("decode", c) not in known for c in decode
        ):
            return Query(NOTHING, None)
        if not encode and not decode and isp is None:
            return Query(None, region)
        return Query((encode, decode, isp), region)

    def accepts(self, hard: Hashable, capacity: Capacity) -> bool:
        if hard is None:
            return True
        if hard is NOTHING or not isinstance(hard, tuple):
            return False
        encode, decode, isp = hard
        return encode <= capacity.encode and decode <= capacity.decode and self._isp.accepts(isp, capacity)

    def prefers(self, soft: Hashable, capacity: Capacity) -> bool:
        return self._isp.prefers(soft, capacity)

    def terms(self, capacity: Capacity) -> Iterable[Hashable]:
        yield from self._isp.terms(capacity)
        yield from (("encode", c) for c in capacity.encode)
        yield from (("decode", c) for c in capacity.decode)


class AnalyticsMatcher(Matcher):
    """The worker's ``capacity.algorithms`` must list ``preference['algorithm']``."""

    name = "analytics"

    def query(self, preference: object, known: Container[Hashable]) -> Query:
        algorithm = _field(preference, "algorithm")
        if not isinstance(algorithm, str):
            return _NO_QUERY
        return Query(algorithm if ("algorithm", algorithm) in known else NOTHING, None)

    def accepts(self, hard: Hashable, capacity: Capacity) -> bool:
        if hard is None:
            return True
        return hard in capacity.algorithms

    def terms(self, capacity: Capacity) -> Iterable[Hashable]:
        return (("algorithm", a) for a in capacity.algorithms)


#: Matcher classes by name.
MATCHERS: Mapping[str, type[Matcher]] = MappingProxyType(
    {cls.name: cls for cls in (GeneralMatcher, IspRegionMatcher, VideoMatcher, AnalyticsMatcher)}
)

#: The matcher of each purpose; purposes not listed use ``general``.
MATCHER_FOR_PURPOSE: Mapping[str, str] = MappingProxyType(
    {
        "portal": "isp-region",
        "webrtc": "isp-region",
        "streaming": "isp-region",
        "audio": "isp-region",
        "quic": "isp-region",
        "video": "video",
        "analytics": "analytics",
    }
)


def create_matcher(name: str) -> Matcher:
    """Build the matcher called ``name`` (one of :data:`MATCHERS`); :class:`InvalidArgument` otherwise."""
    cls = MATCHERS.get(name)
    if cls is None:
        raise InvalidArgument(f"unknown matcher {name!r}; expected one of: {', '.join(sorted(MATCHERS))}")
    return cls()


def matcher_for(purpose: str) -> Matcher:
    """The matcher OWT uses for ``purpose`` (``general`` for unlisted purposes)."""
    return create_matcher(MATCHER_FOR_PURPOSE.get(purpose, "general"))
