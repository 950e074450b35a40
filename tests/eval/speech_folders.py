"""Random-initialised tiny transformers models saved as the folders ``evaluate.py`` takes (no hub), and a tiny
LibriSpeech-layout folder of FLAC files with ``*.trans.txt`` transcripts."""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf
import torch

from tests.conftest import synth_speech

LETTERS = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")
TRANSCRIPTS = {"1089-134686-0000": "HE HOPED THERE WOULD BE STEW FOR DINNER",
               "1089-134686-0001": "STUFF IT INTO YOU",
               "121-121726-0000": "ALSO A POPULAR CONTRIVANCE"}


def librispeech(root: Path, seconds: float = 0.7, transcripts: bool = True) -> Path:
    """``root/LibriSpeech/test-clean/<speaker>/<chapter>/<utt>.flac`` (+ ``<speaker>-<chapter>.trans.txt``)."""
    top = root / "LibriSpeech" / "test-clean"
    chapters: dict[Path, list[str]] = {}
    for n, (utt, text) in enumerate(TRANSCRIPTS.items()):
        speaker, chapter, _ = utt.split("-")
        folder = top / speaker / chapter
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{utt}.flac", synth_speech(seconds, seed=n)[0].numpy(), 16000, subtype="PCM_16")
        chapters.setdefault(folder, []).append(f"{utt} {text}")
    if transcripts:
        for folder, lines in chapters.items():
            (folder / f"{folder.parent.name}-{folder.name}.trans.txt").write_text("\n".join(lines) + "\n")
    return top


def random_codebooks(model):
    """Random codebooks: transformers initialises EnCodec's and Mimi's to zeros (filled by k-means in training), and
    zero codebooks would decode every codebook count to the same audio."""
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith((".codebook.embed", ".codebook.embed_sum")):
                buf.normal_()
    return model


def tiny_encodec():
    import transformers as tf

    torch.manual_seed(0)
    # upsampling 8·5·4·2 = 320 samples at 24 kHz → 75 Hz frames, 1024-entry codebooks: 1.5 kbps = 2 codebooks
    return random_codebooks(tf.EncodecModel(tf.EncodecConfig(
        target_bandwidths=[1.5, 3.0], sampling_rate=24000, audio_channels=1, normalize=False, hidden_size=16,
        num_filters=4, num_residual_layers=1, upsampling_ratios=[8, 5, 4, 2], codebook_size=1024, codebook_dim=16,
        num_lstm_layers=1)).eval())


def tiny_mimi():
    import transformers as tf

    torch.manual_seed(0)
    # upsampling 8·6·5·4 = 960 samples → 25 Hz, halved to Mimi's 12.5 Hz frames; 2048-entry codebooks (11 bits)
    return random_codebooks(tf.MimiModel(tf.MimiConfig(
        hidden_size=16, num_filters=4, num_residual_layers=1, upsampling_ratios=[8, 6, 5, 4], frame_rate=12.5,
        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, head_dim=8, intermediate_size=32,
        codebook_size=2048, codebook_dim=16, num_quantizers=8, num_semantic_quantizers=1,
        vector_quantization_hidden_dimension=16, sliding_window=16, upsample_groups=16)).eval())


def tiny_hf_dac():
    import transformers as tf

    torch.manual_seed(0)
    return tf.DacModel(tf.DacConfig(encoder_hidden_size=8, downsampling_ratios=[2, 4, 5], decoder_hidden_size=16,
                                    n_codebooks=4, codebook_size=1024, codebook_dim=4, hidden_size=64,
                                    sampling_rate=16000)).eval()


def hubert_ctc_folder(folder: Path) -> Path:
    """A tiny HuBERT-CTC with a letter vocabulary, its tokenizer and feature extractor (a ``Wav2Vec2Processor``)."""
    import transformers as tf

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate(LETTERS)}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = tf.Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), unk_token="<unk>", pad_token="<pad>",
                                        word_delimiter_token="|")
    extractor = tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                            do_normalize=True, return_attention_mask=False)
    tf.Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    torch.manual_seed(0)
    model = tf.HubertForCTC(tf.HubertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2, pad_token_id=0, ctc_loss_reduction="mean"))
    with torch.no_grad():  # a random head would mostly emit <pad>; make letters and word breaks win instead
        model.lm_head.weight.mul_(20.0)
        model.lm_head.bias.zero_()
        model.lm_head.bias[0] = -1e3
    model.save_pretrained(folder)
    return folder


def wavlm_xvector_folder(folder: Path) -> Path:
    import transformers as tf

    folder.mkdir(parents=True, exist_ok=True)
    tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                return_attention_mask=True).save_pretrained(folder)
    torch.manual_seed(0)
    tf.WavLMForXVector(tf.WavLMConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=(16, 16),
        conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
        num_buckets=16, max_bucket_distance=32, tdnn_dim=(16, 16, 16, 16, 32), tdnn_kernel=(5, 3, 3, 1, 1),
        tdnn_dilation=(1, 2, 3, 1, 1), xvector_output_dim=8)).save_pretrained(folder)
    return folder


def save(model, folder: Path) -> Path:
    model.save_pretrained(folder)
    return folder


WHISPER_SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>",
                    "<|notimestamps|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>"]


def whisper_folder(folder: Path) -> Path:
    """A tiny Whisper (1-layer encoder and decoder, 16 mel bins, 1 s window) with a printable-ASCII byte-level
    vocabulary and Whisper's special tokens, greedy, at most 10 new tokens."""
    import transformers as tf

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate([chr(c) for c in range(33, 127)] + ["Ġ"])}  # Ġ: GPT-2's byte for a space
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    end = WHISPER_SPECIALS[0]
    tokenizer = tf.WhisperTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token=end,
                                    bos_token=end, eos_token=end, pad_token=end)
    tokenizer.add_special_tokens({"additional_special_tokens": WHISPER_SPECIALS[1:]})
    extractor = tf.WhisperFeatureExtractor(feature_size=16, sampling_rate=16000, chunk_length=1, n_fft=400,
                                           hop_length=160)
    tf.WhisperProcessor(extractor, tokenizer).save_pretrained(folder)
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in WHISPER_SPECIALS}
    torch.manual_seed(0)
    model = tf.WhisperForConditionalGeneration(tf.WhisperConfig(
        vocab_size=len(tokenizer), num_mel_bins=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, d_model=16, encoder_ffn_dim=32, decoder_ffn_dim=32, max_source_positions=50,
        max_target_positions=32, decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids[end],
        pad_token_id=ids[end], bos_token_id=ids[end])).eval()
    model.generation_config = tf.GenerationConfig(decoder_start_token_id=ids["<|startoftranscript|>"],
                                                  eos_token_id=ids[end], pad_token_id=ids[end], max_new_tokens=10)
    model.save_pretrained(folder)
    return folder
