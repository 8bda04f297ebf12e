"""A guard against a faust-streaming 0.15.3 rebalance bug that loses input messages.

Measured here (an `input gap` warning from Runtime.check_contiguous, and inputs committed but
never folded): when a rebalance starts, the stream skips the message it is about to hand to the
agent (flow control suspended, or the message carries the previous consumer generation) and
still *acks* it. The ack puts its offset in the consumer's committable set, so the next commit
moves past a message no agent processed, and the seek after the rebalance does not re-read it.
(Related upstream reports: faust-streaming issues #216, #221, #312.)

The guard refuses to make such a message committable: it is dropped from the unacked set (so
rebalances do not wait for it) but its offset is not committed; the post-rebalance seek to the
committed offset delivers it again. A message that *was* processed and is acked while flow is
suspended is then re-read too: the folds are idempotent (domain/stock.py), so that costs only
a replay. At-least-once is kept; nothing is skipped.
"""

from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer
from faust.types.tuples import ack_lock

_original_ack = Consumer.ack


def _ack_unless_stale(self: Consumer, message: Any) -> bool:
    app = self.app
    stale = (not app.flow_control.is_active()) or (
        message.generation_id != app.consumer_generation_id
    )
    if not stale:
        return bool(_original_ack(self, message))
    with ack_lock:
        message.acked = True
        self._unacked_messages.discard(message)
    return False


def install() -> None:
    """Idempotent: patch Consumer.ack once per process."""
    if Consumer.ack is not _ack_unless_stale:
        Consumer.ack = _ack_unless_stale  # type: ignore[method-assign]
