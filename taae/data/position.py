"""Where a run stands in an epoch, independently of how many devices, workers and items per batch read it.

An epoch's items form one sequence S (the folder module: the shuffled file order; the Shar module: the readers'
shuffled outputs laid end to end, for the topology that started the epoch). What is left of the epoch is a list of
half-open intervals of S. A *segment* is the part of the epoch one topology reads: its intervals, laid end to end,
are dealt to the readers of that topology (batch-sized, the tail that fills no global batch is dropped, as
``drop_last`` always drops it); what a reader has taken is a prefix of its part. Resuming on another topology takes
what is left, which is again a list of intervals, as a new segment: no item is read twice and none is skipped,
whatever the counts on either side.

Lightning counts the batches of an epoch per rank; a segment that starts mid-epoch is placed so that its last batch
is the epoch's last: it starts at batch ``offset`` = (full epoch) − (batches in the segment).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

Intervals = list[tuple[int, int]]
"""Half-open [start, stop) ranges of the epoch sequence, in reading order."""


@dataclass(frozen=True)
class Topology:
    """Who reads an epoch: devices, loader workers per device (each a Shar reader), items per batch."""

    world_size: int
    workers: int
    batch_size: int

    def __str__(self) -> str:
        return f"{self.world_size} device(s) × {self.workers} worker(s) × batch {self.batch_size}"

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def length(intervals: Intervals) -> int:
    return sum(b - a for a, b in intervals)


def cut(intervals: Intervals, start: int, stop: int) -> Intervals:
    """Items [start, stop) of the intervals laid end to end, as intervals of S."""
    out, position = [], 0
    for a, b in intervals:
        lo, hi = max(start - position, 0), min(stop - position, b - a)
        if lo < hi:
            out.append((a + lo, a + hi))
        position += b - a
    return out


def remaining(parts: list[Intervals], taken: list[int]) -> Intervals:
    """What is left when reader g has taken the first ``taken[g]`` items of its part ``parts[g]``."""
    out: Intervals = []
    for part, count in zip(parts, taken, strict=True):
        out += cut(part, count, length(part))
    return [(a, b) for a, b in out if b > a]


@dataclass
class Segment:
    """The part of an epoch read by one topology, from Lightning's batch ``offset`` (per rank) to the epoch's end."""

    intervals: Intervals
    offset: int

    def to_dict(self) -> dict:
        return {"intervals": [list(i) for i in self.intervals], "offset": self.offset}

    @classmethod
    def from_dict(cls, state: dict) -> Segment:
        return cls([(int(a), int(b)) for a, b in state["intervals"]], int(state["offset"]))
