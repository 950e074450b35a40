"""WavLM feature loss for TAAE's perceptual fine-tune (§6), with the fixes of §9 item 11.

Shape legend: B batch, T samples, N WavLM frames (T / 320), D WavLM hidden size.

The loss is the mean over selected transformer layers l of mean|φ_l(x̂) − φ_l(x)| / (std(φ_l(x)) + eps), as in
stable-audio-tools' ``HubertLoss`` with the WavLM-Large model. Differences from that code, all deliberate:

- the target features are computed under ``torch.no_grad()`` (the official code keeps their graph);
- the input is normalised per utterance (zero mean, unit variance per item, as the WavLM feature extractor of
  ``transformers`` does), and the std in the denominator is taken per utterance: torchaudio's wrapper
  layer-normalises the whole (B, T) batch jointly, which makes each item's loss depend on the rest of the batch;
- the weights come from a local ``transformers`` checkpoint (``WavLMModel.from_pretrained(path)``); nothing is
  downloaded;
- the WavLM is frozen, always in eval mode, and kept out of ``parameters()`` and ``state_dict()`` (it is not
  a registered submodule), so optimisers skip it and checkpoints do not carry ~300 M teacher weights. It still
  follows ``.to(device)``/``.cuda()`` of the parent module.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torchaudio
from torch import Tensor, nn

WAVLM_SAMPLE_RATE = 16000  # WavLM was pre-trained on 16 kHz audio; other rates are resampled to it.

GET_WAVLM_LARGE = (
    "on a connected machine run `python -c \"from transformers import WavLMModel; "
    "WavLMModel.from_pretrained('microsoft/wavlm-large').save_pretrained('wavlm-large')\"`, copy the wavlm-large "
    "folder here and set model.init_args.perceptual_loss.init_args.model_path to it"
)
"""How to get the paper's WavLM-Large onto a machine without hub access (weights are never downloaded here)."""

RANDOM_WAVLM_CONFIG = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16),
    conv_kernel=(10, 4), conv_stride=(5, 4), feat_extract_norm="layer", do_stable_layer_norm=True,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, num_buckets=32, max_bucket_distance=64,
)
"""WavLM-Large's layout (layer-normed conv front end, pre-LN transformer) at toy width: tests and the CPU demo."""


def check_wavlm_folder(path: str | Path) -> Path:
    """The folder of a ``save_pretrained`` WavLM, or a one-line error saying what is wrong and how to fix it."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"WavLM folder not found: {folder}; {GET_WAVLM_LARGE}")
    config = folder / "config.json"
    weights = [folder / name for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")]
    if not config.is_file() or not any(w.is_file() for w in weights):
        raise FileNotFoundError(f"{folder} is not a saved transformers model (needs config.json and "
                                f"model.safetensors); {GET_WAVLM_LARGE}")
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{config}: unreadable ({err}); {GET_WAVLM_LARGE}") from None
    if model_type != "wavlm":
        raise ValueError(f"{folder} holds a {model_type!r} model, not a WavLM; {GET_WAVLM_LARGE}")
    return folder


def save_random_wavlm(path: str | Path, config: dict | None = None, seed: int = 0) -> Path:
    """Save a randomly initialised WavLM (``RANDOM_WAVLM_CONFIG`` by default) the way WavLM-Large is stored.

    It exercises the stage-2 plumbing (loading, features, gradients) without the real weights; its loss carries
    no perceptual knowledge.
    """
    from transformers import WavLMConfig, WavLMModel

    with torch.random.fork_rng(devices=[]):  # the caller's random stream is left as it was
        torch.manual_seed(seed)
        model = WavLMModel(WavLMConfig(**(config or RANDOM_WAVLM_CONFIG)))
    model.save_pretrained(str(path))
    return Path(path)


class WavLMFeatureLoss(nn.Module):
    """Normalised L1 between WavLM transformer-layer outputs of the reconstruction and of the target.

    Args:
        model_path: directory of a ``transformers`` WavLM checkpoint (e.g. WavLM-Large, the paper's choice §9.3).
        config: keyword arguments of a ``transformers.WavLMConfig`` for a randomly initialised WavLM (tests,
            shape-only runs). Give exactly one of ``model_path`` and ``config``.
        layers: 0-based indices of the transformer layers whose outputs are compared (negative counts from the
            end); None = all layers (the official default, §6; the paper's choice is NF). Layers past the
            deepest selected one are dropped from the model, since they cannot affect the loss.
        sample_rate: sample rate of the audio given to ``forward``; resampled to 16 kHz if different.
        normalize_input: normalise each utterance to zero mean and unit variance first (WavLM-Large was trained
            on normalised input; the base models were not).
        input_eps: variance floor of that normalisation (the ``transformers`` feature extractor's 1e-7).
        eps: floor of the per-layer std in the denominator (§6, 1e-5).

    Layer outputs are the residual stream after each layer (torchaudio's ``extract_features``), without the
    encoder's final LayerNorm that ``transformers`` adds to the last hidden state of WavLM-Large.
    """

    def __init__(
        self,
        model_path: str | None = None,
        config: dict | None = None,
        layers: Sequence[int] | None = None,
        sample_rate: int = 16000,
        normalize_input: bool = True,
        input_eps: float = 1e-7,
        eps: float = 1e-5,
    ):
        super().__init__()
        from transformers import WavLMConfig, WavLMModel

        if (model_path is None) == (config is None):
            raise ValueError(
                "give exactly one of model_path (a local WavLM checkpoint) and config (a random WavLMConfig), "
                f"got model_path={model_path!r}, config={config!r}"
            )
        if model_path is not None:
            model = WavLMModel.from_pretrained(str(check_wavlm_folder(model_path)))
        else:
            model = WavLMModel(WavLMConfig(**config))

        num_layers = len(model.encoder.layers)
        chosen = list(range(num_layers)) if layers is None else [int(i) for i in layers]
        if not chosen or any(not -num_layers <= i < num_layers for i in chosen):
            raise ValueError(f"layers {layers!r} must be a non-empty list of indices into {num_layers} layers")
        self.layers = [i % num_layers for i in chosen]
        model.encoder.layers = model.encoder.layers[: max(self.layers) + 1]
        model.requires_grad_(False).eval()
        # Stored outside the module tree: not a parameter, not in state_dict; `_apply` moves it with us.
        self.__dict__["wavlm"] = model

        self.model_path = model_path
        self.sample_rate = sample_rate
        self.normalize_input = normalize_input
        self.input_eps = input_eps
        self.eps = eps

    def _apply(self, fn, recurse=True):
        self.wavlm._apply(fn)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> WavLMFeatureLoss:
        super().train(mode)
        self.wavlm.eval()  # frozen teacher: no dropout, no layer drop, no SpecAugment masking
        return self

    def features(self, wav: Tensor) -> list[Tensor]:
        """Outputs (B, N, D) of the selected layers for a (B, T) or (B, 1, T) waveform at ``sample_rate``."""
        if wav.dim() == 3 and wav.shape[1] == 1:
            wav = wav[:, 0]
        if wav.dim() != 2:
            raise ValueError(f"expected a mono waveform (B, T) or (B, 1, T), got {tuple(wav.shape)}")
        if self.sample_rate != WAVLM_SAMPLE_RATE:
            wav = torchaudio.functional.resample(wav, self.sample_rate, WAVLM_SAMPLE_RATE)
        if self.normalize_input:
            mean = wav.mean(dim=-1, keepdim=True)
            var = wav.var(dim=-1, keepdim=True, unbiased=False)
            wav = (wav - mean) / torch.sqrt(var + self.input_eps)

        captured: dict[int, Tensor] = {}

        def keep(index):
            def hook(module, args, output):
                captured[index] = output[0]

            return hook

        handles = [self.wavlm.encoder.layers[i].register_forward_hook(keep(i)) for i in set(self.layers)]
        try:
            self.wavlm(input_values=wav)
        finally:
            for handle in handles:
                handle.remove()
        return [captured[i] for i in self.layers]

    def forward(self, pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        """The loss; ``reduction="none"`` gives one value per utterance (B,), "mean" their mean."""
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        if reduction not in ("mean", "none"):
            raise ValueError(f"unknown reduction {reduction!r}; allowed: mean, none")
        with torch.no_grad():
            target_features = self.features(target)
        pred_features = self.features(pred)
        per_layer = []
        for fp, ft in zip(pred_features, target_features):
            fp, ft = fp.float(), ft.float()  # (B, N, D)
            dist = (fp - ft).abs().mean(dim=(1, 2))
            per_layer.append(dist / (ft.std(dim=(1, 2)) + self.eps))
        per_item = torch.stack(per_layer).mean(dim=0)  # (B,)
        return per_item.mean() if reduction == "mean" else per_item
