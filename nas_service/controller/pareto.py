"""Pareto fronts of accuracy (max) vs latency (min), plus optional extra objectives to minimise.

A point's `values` are in objective order (accuracy first, then latency_ms, then e.g. params);
only accuracy is maximised. Two objectives take the incremental path: the front is kept sorted by
latency with accuracy strictly increasing, so adding a point is a binary search plus removal of
the members it dominates: O(log n) per point to find its place, O(n log n) over a whole search.
More objectives fall back to a pairwise check against the current front.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    key: Hashable
    values: tuple[float, ...]

    @property
    def accuracy(self) -> float:
        return self.values[0]

    @property
    def latency_ms(self) -> float:
        return self.values[1]


def _as_min(values: Sequence[float]) -> tuple[float, ...]:
    return (-values[0], *values[1:])


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """`a` is at least as good as `b` in every objective and better in one (accuracy max, the rest min)."""
    ma, mb = _as_min(a), _as_min(b)
    return all(x <= y for x, y in zip(ma, mb, strict=True)) and ma != mb


class Front:
    """A Pareto front that grows one point at a time; `add` says what joined and what left."""

    def __init__(self, points: Iterable[Point] = ()) -> None:
        self._points: list[Point] = []
        self._latencies: list[float] = []
        for p in points:
            self.add(p)

    @property
    def points(self) -> list[Point]:
        """Members sorted by latency (fastest first)."""
        return list(self._points)

    def __len__(self) -> int:
        return len(self._points)

    def add(self, point: Point) -> tuple[bool, list[Point]]:
        """Insert `point` unless a member dominates (or equals) it; return (joined, members it removed)."""
        if any(math.isnan(v) for v in point.values):
            raise ValueError(f"point {point.key!r} has a NaN objective {point.values}: expected finite numbers")
        if len(point.values) == 2:
            return self._add_2d(point)
        return self._add_nd(point)

    def _add_2d(self, p: Point) -> tuple[bool, list[Point]]:
        # Members faster than or as fast as p: the last one is the most accurate of them.
        i = bisect.bisect_right(self._latencies, p.latency_ms)
        if i > 0 and self._points[i - 1].accuracy >= p.accuracy:
            return False, []
        # Members at least as slow as p with no better accuracy are dominated by p; they are contiguous.
        j = i
        while j < len(self._points) and self._points[j].accuracy <= p.accuracy:
            j += 1
        lo = i - 1 if i > 0 and self._latencies[i - 1] == p.latency_ms else i
        removed = self._points[lo:j]
        self._points[lo:j] = [p]
        self._latencies[lo:j] = [p.latency_ms]
        return True, removed

    def _add_nd(self, p: Point) -> tuple[bool, list[Point]]:
        if any(dominates(q.values, p.values) or q.values == p.values for q in self._points):
            return False, []
        removed = [q for q in self._points if dominates(p.values, q.values)]
        kept = [q for q in self._points if q not in removed] + [p]
        kept.sort(key=lambda q: (q.latency_ms, q.accuracy))
        self._points = kept
        self._latencies = [q.latency_ms for q in kept]
        return True, removed


def best_under(points: Iterable[Point], max_latency_ms: float) -> Point | None:
    """The most accurate point no slower than `max_latency_ms` (fastest on ties), or None."""
    fitting = [p for p in points if p.latency_ms <= max_latency_ms]
    return max(fitting, key=lambda p: (p.accuracy, -p.latency_ms), default=None)


def knee(points: Sequence[Point]) -> Point | None:
    """The knee of an accuracy/latency front: after scaling both axes to [0, 1], the member farthest
    from the straight line joining the fastest and the most accurate member (the Kneedle rule).
    With fewer than three members, the one nearest the ideal corner (best accuracy, least latency)."""
    front = sorted(points, key=lambda p: p.latency_ms)
    if not front:
        return None
    lat = [p.latency_ms for p in front]
    acc = [p.accuracy for p in front]
    lat_span = (max(lat) - min(lat)) or 1.0
    acc_span = (max(acc) - min(acc)) or 1.0
    xy = [((x - min(lat)) / lat_span, (y - min(acc)) / acc_span) for x, y in zip(lat, acc, strict=True)]
    if len(front) >= 3:
        (x0, y0), (x1, y1) = xy[0], xy[-1]
        norm = math.hypot(x1 - x0, y1 - y0) or 1.0
        distance = [abs((y1 - y0) * x - (x1 - x0) * y + x1 * y0 - y1 * x0) / norm for x, y in xy]
        best = max(range(len(front)), key=lambda i: (distance[i], -i))
        if distance[best] > 0:
            return front[best]
    return front[min(range(len(front)), key=lambda i: math.hypot(xy[i][0], 1 - xy[i][1]))]


def hypervolume_2d(points: Iterable[tuple[float, float]], max_latency_ms: float, min_accuracy: float = 0.0) -> float:
    """Area dominated by (accuracy, latency) points inside the box [min_accuracy, .] x [., max_latency_ms]."""
    front = Front(Point(i, (a, lat)) for i, (a, lat) in enumerate(points)
                  if lat < max_latency_ms and a > min_accuracy)
    area, prev_acc = 0.0, min_accuracy
    for p in front.points:  # latency ascending, accuracy ascending
        area += (max_latency_ms - p.latency_ms) * (p.accuracy - prev_acc)
        prev_acc = p.accuracy
    return area
