"""Why no frame comes out: inputs that are matched but silent, or that never pair up, with the likely cause.

A node that publishes nothing is the first thing a new user meets, and the reasons are invisible from
inside: DDS drops large messages that a transport cannot carry without a word, and a synchroniser
that never finds three stamps close enough just discards. :class:`InputWatch` looks at what the node knows
(publishers discovered per input and their reliability, the subscription's policy, when a message last
arrived, the last stamps, the synchroniser's discards) and names the likely cause and the fix. Pure Python
with explicit time, so it is unit-tested without DDS; the node logs each problem once per episode and shows
the current ones on /diagnostics.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .input_qos import BEST_EFFORT, RELIABLE, compatible

DEFAULT_PROFILE_HINT = 'config/fastdds_large_data.xml'


@dataclass
class InputState:
    """What the node knows about one input at a check."""

    topic: str
    policy: str  # the subscription's reliability now
    mode: str  # input_reliability: auto, best_effort or reliable
    offered: list[str] = field(default_factory=list)  # reliability of each discovered publisher
    matched: int | None = None  # publishers the subscription matched (None: rclpy cannot tell)
    last_message: float | None = None  # monotonic s
    last_stamp_ns: int | None = None
    #: the stamps of the last few messages, oldest first: a check may fall between the arrival of one
    #: frame's image and its cloud, so the last stamps alone can belong to different frames
    recent_stamps_ns: Sequence[int] = ()


@dataclass(frozen=True)
class InputProblem:
    """One reason for missing output: ``key`` identifies it (for warn-once), ``text`` says cause and fix."""

    key: str
    topic: str | None
    text: str


class InputWatch:
    """Finds silent and unpaired inputs; :meth:`new` hands each problem out once per episode.

    Silent: an input whose publishers are matched has delivered nothing for ``silent_after_s`` while another
    input still arrives (when every input is quiet the source is idle, which is not a fault), or whose
    publishers can never match. Unpaired: every input arrives, but no set was synchronised for
    ``unsynced_after_s`` and the synchroniser discarded messages meanwhile.
    """

    def __init__(self, silent_after_s: float = 3.0, unsynced_after_s: float = 3.0,
                 profile_hint: str = DEFAULT_PROFILE_HINT) -> None:
        self.silent_after_s = silent_after_s
        self.unsynced_after_s = unsynced_after_s
        self.profile_hint = profile_hint
        self._publishers_since: dict[str, float] = {}
        self._all_arriving_since: float | None = None
        self._unmatched_at_start = 0
        self._warned: set[str] = set()
        #: The problems of the last :meth:`check`.
        self.current: list[InputProblem] = []

    def reset(self) -> None:
        """Forget the episode (the node was deactivated)."""
        self._publishers_since.clear()
        self._all_arriving_since = None
        self._warned.clear()
        self.current = []

    def check(self, now: float, inputs: Sequence[InputState], last_synced: float | None, unmatched: int,
              sync_slop_s: float, queue_size: int) -> list[InputProblem]:
        """The problems now.

        ``last_synced``: when the synchroniser last emitted a set; ``unmatched``: its running count of
        discarded messages.
        """
        # a source that sends nothing at all is idle, not broken: an input is silent while another arrives
        active = any(s.last_message is not None and now - s.last_message < self.silent_after_s for s in inputs)
        problems = [p for s in inputs if (p := self._silent(now, s, active))]
        problems += self._unsynced(now, inputs, last_synced, unmatched, sync_slop_s, queue_size)
        self.current = problems
        return problems

    def new(self, problems: Sequence[InputProblem]) -> list[InputProblem]:
        """The problems not handed out yet in their episode; a problem that cleared may be handed out again."""
        keys = {p.key for p in problems}
        self._warned &= keys
        fresh = [p for p in problems if p.key not in self._warned]
        self._warned |= {p.key for p in fresh}
        return fresh

    # ------------------------------------------------------------------ silent inputs
    def _silent(self, now: float, s: InputState, active: bool) -> InputProblem | None:
        if not s.offered:
            self._publishers_since.pop(s.topic, None)
            return None
        since = self._publishers_since.setdefault(s.topic, now)
        quiet_since = max(since, s.last_message) if s.last_message is not None else since
        if now - quiet_since < self.silent_after_s:
            return None
        n = len(s.offered)
        pubs = f'{n} publisher{"s" * (n != 1)}'
        usable = sum(compatible(s.policy, p) for p in s.offered)
        if usable == 0:
            return InputProblem(f'incompatible:{s.topic}', s.topic, (
                f'{s.topic}: {pubs} offer best effort but input_reliability is reliable, so none can match and '
                'nothing arrives; set input_reliability:=auto (the default) or best_effort'))
        if s.matched == 0 or not active:
            return None  # discovered but not matched yet (DDS matching can take seconds), or an idle source
        quiet = f'no message on {s.topic} for {now - quiet_since:.0f} s although {pubs} '
        quiet += 'is' if n == 1 else 'are'
        quiet += ' matched'
        if s.policy == BEST_EFFORT and RELIABLE in s.offered:
            cause = (': a reliable publisher\'s large messages (clouds) rarely reach a best-effort subscription '
                     'whole with Fast DDS defaults; set input_reliability:=auto (the default) or reliable')
        elif s.policy == BEST_EFFORT:
            cause = (': the publisher sends best effort, and large messages (clouds) sent best effort are lost '
                     'on Fast DDS\' default transports; start the publisher (the camera driver) with '
                     f'FASTDDS_DEFAULT_PROFILES_FILE={self.profile_hint}, or make it publish reliably')
        else:
            cause = (f': check that it publishes (ros2 topic hz {s.topic}); large messages may also exceed the '
                     f'transport\'s buffers (see {self.profile_hint})')
        return InputProblem(f'silent:{s.topic}', s.topic, quiet + cause)

    # ------------------------------------------------------------------ inputs that never pair up
    def _unsynced(self, now: float, inputs: Sequence[InputState], last_synced: float | None, unmatched: int,
                  slop_s: float, queue_size: int) -> list[InputProblem]:
        arriving = [s for s in inputs if s.last_message is not None and now - s.last_message < self.silent_after_s]
        if len(arriving) < len(inputs) or not inputs:
            self._all_arriving_since = None
            return []
        if self._all_arriving_since is None:
            self._all_arriving_since, self._unmatched_at_start = now, unmatched
        since = max(self._all_arriving_since, last_synced) if last_synced is not None else self._all_arriving_since
        if now - since < self.unsynced_after_s or unmatched <= self._unmatched_at_start:
            return []
        stamps = {s.topic: s.last_stamp_ns for s in inputs if s.last_stamp_ns is not None}
        lead = f'no image, camera_info and points within sync_slop ({slop_s:g} s) for {now - since:.0f} s ' \
               f'although all arrive ({unmatched - self._unmatched_at_start} messages discarded)'
        if len(stamps) == len(inputs):
            spread = _frame_offset([list(s.recent_stamps_ns) or [s.last_stamp_ns] for s in inputs]) / 1e9
            if spread > slop_s:
                latest = ', '.join(f'{t} {ns / 1e9:.3f}' for t, ns in stamps.items())
                return [InputProblem('unsynced', None, (
                    f'{lead}: their stamps differ by {spread:.3f} s (last stamps: {latest}); one frame\'s '
                    'messages must carry the same capture time: fix the driver\'s stamps, or raise sync_slop if '
                    'the sensors are not triggered together'))]
        return [InputProblem('unsynced', None, (
            f'{lead}: the stamps are close but one input arrives later than the other inputs\' queues last '
            f'(sync_queue_size {queue_size}); raise sync_queue_size, or check that every input carries the '
            'capture time and not the send time'))]


def _frame_offset(histories: list[list[int]]) -> int:
    """The smallest stamp difference (ns) within which one message of every input can be paired.

    For each stamp of the first input, the farthest of the other inputs' nearest stamps; the best of
    those. Pairing by nearest stamps is what the synchroniser tries, so this is the offset it faces,
    whichever frame each input's last message belongs to. A few stamps each: plain loops.
    """
    ref, *others = histories
    return min(max((min(abs(t - r) for t in h) for h in others), default=0) for r in ref)
