"""SharDataModule: the folder module's batches from Shar shards, rank/worker splitting, exact resume, bad shards."""

import hashlib
import warnings

import lightning as L
import pytest
import soundfile as sf
import torch

from taae.data import AudioDataModule, SharDataModule
from taae.data.dataset import ItemMaker
from taae.data.prepare import prepare, shard_names
from taae.data.shar import SharStream
from taae.data.shards import list_shards
from tests.conftest import batch_recorder, garble_first_member, synth_speech

SEG = 1280


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """13 files of 0.2–0.5 s (one at 44.1 kHz stereo), prepared into shards of 4: (folder, shar)."""
    root = tmp_path_factory.mktemp("corpus")
    src = root / "src"
    src.mkdir()
    for i in range(12):
        sf.write(src / f"utt{i:02d}.wav", synth_speech(0.2 + 0.025 * i, 16000, seed=i)[0].numpy(), 16000)
    stereo = torch.stack([synth_speech(0.3, 44100, 50)[0], synth_speech(0.3, 44100, 51)[0]], dim=1)
    sf.write(src / "zz_stereo.wav", stereo.numpy(), 44100)
    prepare(src, root / "shar", shard_size=4, progress=False)
    return src, root / "shar"


def digest(x):
    return hashlib.sha1(x.numpy().tobytes()).hexdigest()


def test_same_batches_as_the_folder_module_without_shuffle(corpus):
    src, shar = corpus
    kw = dict(segment_length=SEG, batch_size=3, seed=7, shuffle=False, max_val_items=4)
    folder = AudioDataModule(str(src), val=str(src), **kw)
    shards = SharDataModule(str(shar), val=str(shar), **kw)
    for dm in (folder, shards):
        dm.setup("fit")
    for epoch in (0, 1):  # crops, loudness draws and phase flips follow (seed, epoch, index) in both
        loaders = [dm.train_dataloader() for dm in (folder, shards)]
        for loader in loaders:
            loader.sampler.set_epoch(epoch)
        a, b = (list(loader) for loader in loaders)
        assert len(a) == len(b) == 4 and all(torch.equal(x, y) for x, y in zip(a, b))
    va, vb = (list(dm.val_dataloader()) for dm in (folder, shards))
    assert all(torch.equal(x, y) for x, y in zip(va, vb))


def test_a_codec_trains_identically_on_both_modules(corpus):
    from tests.training.test_module import make_module, trainer

    src, shar = corpus
    weights = []
    for dm in (AudioDataModule(str(src), segment_length=SEG, batch_size=2, shuffle=False, seed=0),
               SharDataModule(str(shar), segment_length=SEG, batch_size=2, shuffle=False, seed=0)):
        L.seed_everything(0)
        module = make_module()
        trainer(None, 8).fit(module, dm)  # 4 batches
        weights.append(module.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def _items(shards, epoch, **kw):
    make = ItemMaker(16000, SEG, "train", -20.0, 5.0, 0.5)
    stream = SharStream(shards, make, batch_size=2, seed=3, shuffle=True, shuffle_buffer=3, **kw)
    return [[digest(x) for x in stream[k, epoch]] for k in range(len(stream))]


def test_ranks_and_workers_read_disjoint_equal_parts(corpus):
    shards = list_shards(corpus[1], "data.train")
    for epoch in (0, 1):
        parts = [_items(shards, epoch, num_replicas=2, rank=r, num_workers=2) for r in (0, 1)]
        assert len(parts[0]) == len(parts[1]) == 2  # 13 cuts // (4 readers × 2) = 1 batch per reader
        flat = [h for part in parts for batch in part for h in batch]
        assert len(set(flat)) == len(flat) == 8
    assert _items(shards, 0) != _items(shards, 1)  # shuffled anew every epoch
    assert _items(shards, 1) == _items(shards, 1)  # ... and a function of (seed, epoch)


def test_lightning_resume_mid_epoch_with_workers_is_exact(tmp_path, corpus):
    from lightning.pytorch.callbacks import ModelCheckpoint

    Recorder = batch_recorder()

    def data():
        return SharDataModule(str(corpus[1]), segment_length=SEG, batch_size=2, num_workers=2, shuffle_buffer=3)

    kw = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", max_epochs=2,
              num_sanity_val_steps=0, limit_val_batches=0)
    whole = Recorder()
    ckpt = ModelCheckpoint(tmp_path / "ckpt", every_n_train_steps=7, save_top_k=-1)  # epoch 1, batch 1 of 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        L.Trainer(callbacks=[ckpt], **kw).fit(whole, data())
        resumed = Recorder()
        path = next((tmp_path / "ckpt").glob("*step=7.ckpt"))
        L.Trainer(enable_checkpointing=False, **kw).fit(resumed, data(), ckpt_path=path)
    assert len(whole.seen) == 12 and len(resumed.seen) == 5
    assert all(torch.equal(x, y) for x, y in zip(resumed.seen, whole.seen[7:]))


def test_corrupt_recordings_are_replaced_and_batch_counts_hold(tmp_path, corpus):
    shar = tmp_path / "shar"
    shar.mkdir()
    for n in range(4):
        for path in shard_names(corpus[1], n):
            (shar / path.name).write_bytes(path.read_bytes())
    garble_first_member(shard_names(shar, 1)[1])  # shard 1: the first recording's FLAC bytes
    _, tar2 = shard_names(shar, 2)
    tar2.write_bytes(tar2.read_bytes()[:3000])  # shard 2: truncated mid-tar
    dm = SharDataModule(str(shar), segment_length=SEG, batch_size=2, shuffle=False)
    dm.setup("fit")
    with pytest.warns(UserWarning) as record:
        batches = list(dm.train_dataloader())
    assert len(batches) == 6 and all(torch.isfinite(b).all() and b.abs().sum() > 0 for b in batches)
    text = " ".join(str(w.message) for w in record)
    assert "recording.000001.tar:utt04" in text and "recording.000002.tar: unreadable after" in text


def test_config_errors_name_the_key(tmp_path, corpus):
    with pytest.raises(FileNotFoundError, match="data.train: no such Shar directory"):
        SharDataModule(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="data.val=.*no Shar shards"):
        SharDataModule(str(corpus[1]), val=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="data.train: Shar fields need 'cuts' and 'recording'"):
        SharDataModule({"cuts": ["a.jsonl.gz"]})
    with pytest.raises(ValueError, match="data.shuffle_buffer"):
        SharDataModule(str(corpus[1]), shuffle_buffer=-1)
    dm = SharDataModule(str(corpus[1]), segment_length=SEG, batch_size=8, num_workers=2)
    dm.setup("fit")
    with pytest.raises(ValueError, match="13 cuts cannot fill one batch of 8 for each of 2 readers"):
        dm.train_dataloader()


@pytest.fixture(scope="module")
def cuts24(tmp_path_factory):
    """24 short cuts in shards of 5 (the last one short)."""
    src = tmp_path_factory.mktemp("cuts24")
    for i in range(24):
        sf.write(src / f"c{i:02d}.wav", synth_speech(0.02, 16000, seed=i)[0].numpy(), 16000)
    prepare(src, src / "shar", shard_size=5, progress=False)
    return src / "shar"


@pytest.mark.parametrize(("before", "after", "stop"), [((1, 0), (2, 0), 4), ((2, 0), (1, 0), 3), ((1, 0), (1, 2), 4),
                                                      ((2, 2), (1, 4), 2)])
def test_resume_on_another_topology_sees_every_cut_of_the_epoch_once(cuts24, before, after, stop):
    # Bug (main): the split of the stream into ranks × workers depends on both counts and the state held only
    # (epoch, batches consumed): resumed on other counts, readers restarted on other ranges and shuffles,
    # repeating some cuts and never reaching others.
    from tests.data.topology import resumed_epoch

    def factory(workers):
        return lambda: SharDataModule(str(cuts24), segment_length=160, batch_size=2, num_workers=workers,
                                      seed=3, shuffle_buffer=4)

    seen = resumed_epoch(factory(before[1]), before[0], stop, factory(after[1]), after[0])
    assert sorted(seen) == list(range(24))


def test_resume_on_other_shards_stops_with_one_line(corpus, tmp_path):
    from tests.data.topology import rank_items

    _, shar = corpus
    _, state, _, _ = rank_items(lambda: SharDataModule(str(shar), segment_length=SEG, batch_size=2), 1, 0, None, 1)
    state["shards"] = state["shards"][:-1]
    with pytest.raises(ValueError, match=r"another Shar set .* read by 1 device\(s\) × 0 worker\(s\) × batch 2"):
        rank_items(lambda: SharDataModule(str(shar), segment_length=SEG, batch_size=2), 2, 0, state, None)
