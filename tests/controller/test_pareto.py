"""The incremental Pareto front equals a brute-force non-dominated filter; knee, best-under and hypervolume."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nas_service.controller import early_stop
from nas_service.controller.pareto import Front, Point, best_under, dominates, hypervolume_2d, knee

values = st.floats(min_value=0, max_value=1, allow_nan=False).map(lambda v: round(v, 1))


def brute_force(points: list[Point]) -> set[tuple[float, ...]]:
    return {p.values for p in points if not any(dominates(q.values, p.values) for q in points)}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(values, values), max_size=40))
def test_two_objective_front_matches_brute_force(pairs: list[tuple[float, float]]) -> None:
    points = [Point(i, v) for i, v in enumerate(pairs)]
    front = Front(points)
    assert {p.values for p in front.points} == brute_force(points)
    assert len(front) == len(brute_force(points))  # equal points are kept once
    latencies = [p.latency_ms for p in front.points]
    assert latencies == sorted(latencies)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(values, values, values), max_size=30))
def test_three_objective_front_matches_brute_force(triples: list[tuple[float, float, float]]) -> None:
    points = [Point(i, v) for i, v in enumerate(triples)]
    assert {p.values for p in Front(points).points} == brute_force(points)


def test_add_reports_what_joined_and_left() -> None:
    front = Front([Point("a", (0.5, 1.0)), Point("b", (0.8, 3.0))])
    joined, removed = front.add(Point("c", (0.9, 2.0)))
    assert joined and [p.key for p in removed] == ["b"]
    assert front.add(Point("d", (0.4, 1.5))) == (False, [])


def test_best_under_and_knee() -> None:
    front = [Point(1, (0.5, 1.0)), Point(2, (0.9, 2.0)), Point(3, (0.95, 10.0))]
    assert best_under(front, 2.5).key == 2  # type: ignore[union-attr]
    assert best_under(front, 0.5) is None
    assert knee(front).key == 2  # type: ignore[union-attr]
    assert knee([]) is None


def test_hypervolume_of_a_staircase() -> None:
    assert hypervolume_2d([(0.5, 1.0), (0.8, 2.0)], max_latency_ms=3.0) == 2 * 0.5 + 1 * 0.3
    assert hypervolume_2d([(0.5, 4.0)], max_latency_ms=3.0) == 0.0


def test_early_stop_rule() -> None:
    front = [(0.9, 1.0)]
    # Slow start that cannot reach 0.9 in the remaining epochs even at its current slope: stop.
    assert early_stop.should_stop([0.2, 0.22], planned_epochs=4, latency_ms=2.0, front=front, num_classes=10)
    # Steep curve that can still reach it: keep going.
    assert not early_stop.should_stop([0.4, 0.7], planned_epochs=4, latency_ms=2.0, front=front, num_classes=10)
    # Nothing on the front is as fast as the candidate: never stop.
    assert not early_stop.should_stop([0.2, 0.22], planned_epochs=4, latency_ms=0.5, front=front, num_classes=10)
    # The last epoch is never cut short.
    assert not early_stop.should_stop([0.2, 0.3, 0.4], planned_epochs=3, latency_ms=2.0, front=front,
                                      num_classes=10)


def test_early_stop_grace_protects_short_budgets() -> None:
    front = [(0.9, 1.0)]
    hopeless = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    # Never after the first epoch, whatever the budget: one epoch says too little.
    assert not any(early_stop.should_stop(hopeless[:1], planned_epochs=e, latency_ms=2.0, front=front,
                                          num_classes=10) for e in range(2, 10))
    # A 2-epoch budget never stops; a 3-epoch one at most after its second epoch.
    assert not early_stop.should_stop(hopeless[:1], planned_epochs=2, latency_ms=2.0, front=front, num_classes=10)
    assert early_stop.should_stop(hopeless[:2], planned_epochs=3, latency_ms=2.0, front=front, num_classes=10)
    # Not before the grace fraction of the budget: half of 8 epochs is 4.
    stops = [k for k in range(1, 8) if early_stop.should_stop(hopeless[:k], planned_epochs=8, latency_ms=2.0,
                                                              front=front, num_classes=10)]
    assert stops == [4, 5, 6, 7]
    assert early_stop.should_stop(hopeless[:2], planned_epochs=8, latency_ms=2.0, front=front, num_classes=10,
                                  grace=0.0)
