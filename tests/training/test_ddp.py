"""Two-process DDP on CPU (gloo) through configs/trainer/ddp.yaml, with the gradient balancer on: exact mid-epoch
resume (also on one process), disjoint data per rank, a NaN on one rank skipped on both, one EMA, one set of
balancer scales. Each run is tests/training/ddp_worker.py in a subprocess."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from taae.data.prepare import prepare
from tests.conftest import synth_speech

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")
BATCHES_PER_EPOCH = 3  # 12 cuts / (2 ranks × batch 2)
NAN_RANK, NAN_BATCH = 1, 1
STEPS, CKPT = 14, 8    # 7 generator steps + the skipped batch = 8 batches; checkpoint after 5 (epoch 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(data: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(WORKER), "--data", str(data), "--out", str(out), "--nan-rank", str(NAN_RANK),
           "--nan-batch", str(NAN_BATCH), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, out: Path, ranks: int = 2) -> list[dict]:
    log, _ = proc.communicate(timeout=900)  # a rank that waits forever fails here
    assert proc.returncode == 0, log[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(ranks)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    for i in range(12):
        sf.write(root / f"utt{i:02d}.wav", synth_speech(0.3, 16000, seed=i)[0].numpy(), 16000)
    data = root / "shar"
    prepare(root, data, shard_size=3, progress=False)
    # The uninterrupted run and the first half run side by side; the second half resumes the first.
    straight = _start(data, root / "straight", "--max-steps", str(STEPS))
    first = _start(data, root / "first", "--max-steps", str(CKPT), "--ckpt-every", str(CKPT))
    runs = {"straight": _finish(straight, root / "straight"), "first": _finish(first, root / "first")}
    runs["checkpoints"] = ckpts = sorted((root / "first" / "ckpt").glob("*.ckpt"))
    resumed = _start(data, root / "resumed", "--max-steps", str(STEPS), "--resume", str(ckpts[-1]))
    # The same checkpoint resumed on one process, side by side: it must finish epoch 1 with the cuts left.
    alone = _start(data, root / "alone", "--max-steps", str(STEPS), "--resume", str(ckpts[-1]), "--devices", "1")
    runs["resumed"] = _finish(resumed, root / "resumed")
    runs["alone"] = _finish(alone, root / "alone", ranks=1)
    return runs


def test_two_process_resume_is_bit_identical_to_an_uninterrupted_run(runs):
    straight, resumed = runs["straight"], runs["resumed"]
    assert [r["world_size"] for r in straight] == [2, 2]
    assert straight[0]["weights"] == resumed[0]["weights"] == straight[1]["weights"] == resumed[1]["weights"]
    assert straight[0]["ema"] == resumed[0]["ema"]
    for rank in (0, 1):  # the resumed run saw exactly the batches the uninterrupted one saw after the checkpoint
        done = len(runs["first"][rank]["seen"])  # batches before the checkpoint (the NaN batch made no step)
        assert resumed[rank]["seen"] == straight[rank]["seen"][done:]
        assert resumed[rank]["seen"][0][0] == done and done % BATCHES_PER_EPOCH != 0  # mid-epoch


def test_both_ranks_apply_identical_balancer_scales_at_every_step(runs):
    # Bug (main): each rank balanced with its own local gradient norms, so the ranks' effective weights differed
    # (and their generator gradients were averaged from differently weighted terms).
    for run in ("straight", "resumed"):
        scales = [runs[run][rank]["scales"] for rank in (0, 1)]
        assert len(scales[0]) > 0 and scales[0] == scales[1], run
    straight, resumed = runs["straight"][0]["scales"], runs["resumed"][0]["scales"]
    assert resumed == straight[len(straight) - len(resumed):]  # the resumed balancer continued exactly
    assert {"mel", "waveform"} <= set(straight[-1])


def test_a_two_process_checkpoint_resumed_on_one_process_finishes_the_epoch_with_the_cuts_left(runs):
    # Bug (main): the 1-process run read the checkpoint's per-rank count as its own and skipped epoch 1's rest.
    done = len(runs["first"][0]["seen"])  # batches per rank before the checkpoint, mid-epoch 1
    left = BATCHES_PER_EPOCH - done % BATCHES_PER_EPOCH
    expected = sorted(h for rank in runs["straight"] for b in rank["seen"][done:done + left] for h in b[1:])
    alone = runs["alone"][0]
    assert alone["world_size"] == 1
    assert sorted(h for b in alone["seen"][:2 * left] for h in b[1:]) == expected  # 1 process: 2 × the batches
    # Lightning's count moved to 1-process units: the epoch (2 × as many batches) ends with the cuts left.
    offset = 2 * BATCHES_PER_EPOCH - 2 * left
    assert alone["seen"][0][0] == done - done % BATCHES_PER_EPOCH + offset


def test_each_rank_sees_disjoint_data_every_epoch(runs):
    seen = [runs["straight"][rank]["seen"] for rank in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == STEPS // 2 + 1
    for epoch in range(len(seen[0]) // BATCHES_PER_EPOCH):
        items = [{h for b in s[epoch * BATCHES_PER_EPOCH:(epoch + 1) * BATCHES_PER_EPOCH] for h in b[1:]}
                 for s in seen]
        assert len(items[0]) == len(items[1]) == 2 * BATCHES_PER_EPOCH
        assert not items[0] & items[1]


def test_nan_on_one_rank_skips_the_step_on_both(runs):
    for rank in runs["straight"]:
        assert rank["nan_skips"] == 1 and rank["generator_steps"] == STEPS // 2
    # Had only rank 1 skipped, its replica would have drifted from rank 0's (or rank 0 would wait forever).
    assert runs["straight"][0]["weights"] == runs["straight"][1]["weights"]
    assert runs["straight"][0]["ema"] == runs["straight"][1]["ema"]


def test_checkpoints_are_written_once(runs):
    assert [p.name for p in runs["checkpoints"]] == [f"epoch=1-step={CKPT}.ckpt"]
