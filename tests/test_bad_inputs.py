"""The bad inputs of issue 28 each end in a one-line error, a refusal or a fix, never a traceback or a silent loss."""

from __future__ import annotations

import io
import math
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch

from taae.io.tokens import TokenFile


def _token_file(tmp_path):
    path = tmp_path / "t.npz"
    TokenFile(tokens=torch.zeros(1, 2, 5, dtype=torch.int64), preset="native", sample_rate=16000, num_samples=3200,
              frame_rate=25.0, model_hash="0" * 16, vocab_sizes=(17, 17)).save(path)
    return path


def _npy_header(shape, dtype="<i8") -> bytes:
    """The magic and header of a .npy member claiming ``shape`` (no data follows unless appended)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _with_member(path, name: str, data: bytes):
    """``path`` (an .npz) with member ``name`` set to ``data``, deflated."""
    with zipfile.ZipFile(path) as z:
        members = {info.filename: z.read(info) for info in z.infolist()}
    members[name] = data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for key, value in members.items():
            z.writestr(key, value)


def test_a_token_member_claiming_a_huge_array_is_refused_before_allocation(tmp_path):
    # Bug on main: np.load allocated the claimed (2**40,) int64 array: MemoryError, and a folder's decode stopped.
    path = _token_file(tmp_path)
    _with_member(path, "tokens.npy", _npy_header((2**40,)))
    with pytest.raises(ValueError, match=r"member 'tokens' claims a \(1099511627776,\) int64 array"):
        TokenFile.load(path)


def test_an_extra_member_is_never_decompressed(tmp_path, monkeypatch):
    # Bug on main: every member was read; a 1 MB deflated bomb in an unused member cost ~0.85 GB.
    path = _token_file(tmp_path)
    _with_member(path, "padding.npy", _npy_header((2**27,), "|u1") + bytes(2**27))  # 128 MiB of zeros
    assert path.stat().st_size < 1_000_000
    opened = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    assert TokenFile.load(path).tokens.shape == (1, 2, 5)
    assert opened and "padding.npy" not in opened


def test_stream_chunk_ms_inf_and_nan_are_one_line_errors():
    # Bug on main: --chunk-ms inf raised OverflowError (a traceback).
    from taae.codec.stream_file import chunk_frames_for

    for value in (math.inf, math.nan, -40.0):
        with pytest.raises(ValueError, match="--chunk-ms"):
            chunk_frames_for(value, 640, 16000)


def test_a_bogus_device_is_a_one_line_error():
    # Bug on main: torch.device("bogus") raised RuntimeError with a multi-line message (a traceback).
    from taae.codec import Codec
    from tests.codec.test_codec import tiny_model

    with pytest.raises(ValueError, match=r"device 'bogus' is not a device torch knows"):
        Codec(tiny_model(), device="bogus")


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_negative_or_nan_chunk_seconds_are_refused(tmp_path, capsys, value):
    # Bug on main: a negative or NaN --chunk-seconds silently meant "never chunk".
    from taae.__main__ import main

    sf.write(tmp_path / "a.wav", np.zeros(1600, dtype="float32"), 16000)
    code = main(["encode", str(tmp_path / "a.wav"), str(tmp_path / "a.npz"), "-c", str(tmp_path / "none"),
                 "--chunk-seconds", value])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--chunk-seconds must be" in err


def test_per_file_csv_cells_that_start_like_formulas_are_escaped():
    # Bug on main: a file named "=HYPERLINK(...)" landed in per_file.csv as a formula.
    import csv

    from taae.eval.report import csv_text
    from taae.eval.results import FileResult

    rows = list(csv.reader(io.StringIO(csv_text([
        FileResult(file="=HYPERLINK(\"http://x\")", system="+sys", duration=1.0, errors={"=mel": "bad"}),
        FileResult(file="ok.wav", system="taae", duration=1.0, length_change=-3)], metrics=[]))))
    assert rows[1][0] == "'=HYPERLINK(\"http://x\")" and rows[1][1] == "'+sys" and rows[1][-1] == "'=mel: bad"
    assert rows[2][0] == "ok.wav" and rows[2][3] == "-3"  # numbers stay numbers


def test_tokenize_never_advises_a_flag_it_lacks(tmp_path):
    # Bug on main: tokenize's refusal of a pickled checkpoint said "pass --trust-checkpoint", which it has not.
    from taae.data.prepare import prepare
    from taae.errors import UntrustedFileError
    from taae.jobs.tokenize import tokenize
    from tests.io.test_safety import _evil_checkpoint

    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "a.wav", np.zeros(3200, dtype="float32"), 16000)
    prepare(src, tmp_path / "shar", progress=False)
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(UntrustedFileError) as info:
        tokenize(str(tmp_path / "shar"), tmp_path / "tok", checkpoint=str(evil), progress=False)
    assert "--trust-checkpoint" not in str(info.value).replace("taae export --trust-checkpoint", "")
    assert "taae export --trust-checkpoint" in str(info.value) and not marker.exists()
