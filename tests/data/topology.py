"""Resume across topologies without a trainer: each rank is a data module given a stand-in trainer that carries
Lightning's batch counters, so the counter shift on resume is checked as well as the items each rank reads."""

from __future__ import annotations

from types import SimpleNamespace

from lightning.pytorch.loops.progress import _BatchProgress

from taae.data.shar import SharStream


class StandInTrainer(SimpleNamespace):
    """What the data modules read from a Trainer: rank, world size, the epoch and the epoch's batch counters."""

    def __init__(self, world_size: int, rank: int, ready: int):
        batches = _BatchProgress()
        for tracker in (batches.current, batches.total):
            tracker.ready = tracker.started = tracker.processed = tracker.completed = ready
        epoch = SimpleNamespace(current=SimpleNamespace(processed=0, completed=0))
        super().__init__(world_size=world_size, global_rank=rank, limit_train_batches=1.0,
                         fit_loop=SimpleNamespace(epoch_progress=epoch, epoch_loop=SimpleNamespace(
                             batch_progress=batches)))


def rank_items(make, world_size: int, rank: int, state: dict | None, stop: int | None):
    """The item (cut or file) indices one rank reads in epoch 0, batch by batch, and its data state after ``stop``
    batches (None: to the epoch's end). Returns (items, state, Lightning's count before the first batch, epoch
    length)."""
    dm = make()
    ready = int(state["batches_consumed"]) if state else 0
    trainer = StandInTrainer(world_size, rank, ready)
    dm._trainer_or_none = lambda: trainer
    if state is not None:
        dm.load_state_dict(state)
    loader = dm.train_dataloader()
    start = trainer.fit_loop.epoch_loop.batch_progress.current.ready  # after any shift on resume
    keys = list(loader.sampler)
    if isinstance(loader.dataset, SharStream):
        stream = loader.dataset
        stream.make = None
        stream._batch = lambda reader, items, epoch: [index for index, _, _ in items]  # which cuts, not audio
        batches = [stream[key] for key in keys]
    else:
        batches = [[index for index, _ in keys[i:i + dm.batch_size]] for i in range(0, len(keys), dm.batch_size)]
    if stop is not None:
        batches = batches[:stop - start]
    trainer.fit_loop.epoch_loop.batch_progress.current.ready = start + len(batches)
    return batches, dm.state_dict(), start, len(loader.sampler) // loader.sampler.batch_size


def resumed_epoch(make_before, world_before: int, stop: int, make_after, world_after: int) -> list[int]:
    """Every item read in epoch 0 by ``world_before`` ranks up to batch ``stop``, then by ``world_after`` ranks
    from the checkpointed state to the epoch's end, whose last batch must be the end of Lightning's epoch."""
    seen, states = [], []
    for rank in range(world_before):
        batches, state, _, _ = rank_items(make_before, world_before, rank, None, stop)
        assert len(batches) == stop
        seen += [i for b in batches for i in b]
        states.append(state)
    assert all(s == states[0] for s in states)  # every rank checkpoints the same data state
    for rank in range(world_after):
        batches, _, start, epoch_length = rank_items(make_after, world_after, rank, states[0], None)
        assert start + len(batches) == epoch_length  # Lightning's count ends the epoch with the last batch
        seen += [i for b in batches for i in b]
    return seen
