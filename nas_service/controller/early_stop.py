"""Our early stopping for multi-objective searches (Optuna cannot prune them: `trial.report` raises).

Rule: after epoch k (of E planned), a candidate with latency L keeps training only if its optimistic
final accuracy could still reach the current front at its latency:

    optimistic = min(1, acc_k + (E - k) * max(acc_k - acc_{k-1}, 0.02))      (acc_0 = 1 / classes)
    stop  <=>  optimistic < best accuracy among front members with latency <= L

i.e. the curve is extended linearly at its last slope (at least two points per epoch), which
over-estimates the concave learning curves of training, so a candidate is stopped only when even
that cannot bring it out of the region the front already dominates. With no front member at least
as fast, it never stops. A grace period protects short budgets, where the first epoch says little
(warmup ends there and batch-norm statistics are still moving): no stop before two epochs and before
`grace` (default half) of the planned epochs, so a 2-epoch budget never stops and a 3-epoch one at
most after its second epoch. The rule applies in `pareto` mode; `target` rewards are not monotone in
latency (TuNAS penalises being faster than the target), so there it is off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MIN_SLOPE = 0.02
MIN_EPOCHS = 2
GRACE = 0.5


def best_accuracy_at(front: Sequence[tuple[float, float]], latency_ms: float) -> float | None:
    """Best accuracy among front points (accuracy, latency_ms) no slower than `latency_ms`."""
    fitting = [acc for acc, lat in front if lat <= latency_ms]
    return max(fitting) if fitting else None


def should_stop(curve: Sequence[float], planned_epochs: int, latency_ms: float,
                front: Sequence[tuple[float, float]], num_classes: int, *, grace: float = GRACE) -> bool:
    """Whether the accuracies so far (`curve`, one per epoch) cannot reach the front at `latency_ms`."""
    k = len(curve)
    if k < max(MIN_EPOCHS, math.ceil(grace * planned_epochs)) or k >= planned_epochs:
        return False
    bar = best_accuracy_at(front, latency_ms)
    if bar is None:
        return False
    previous = curve[-2] if k >= 2 else 1.0 / num_classes
    slope = max(curve[-1] - previous, MIN_SLOPE)
    optimistic = min(1.0, curve[-1] + (planned_epochs - k) * slope)
    return optimistic < bar
