"""The model contract and the one model registry.

Every tinct model is a ``ColorModel``: an ``nn.Module`` whose ``forward`` takes lightness
``L`` shaped (B,1,H,W) in [0,100] and returns a prediction (a dict of tensors), and which owns

* ``loss(pred, batch) -> (loss, logs)``: ``batch`` holds "L" (B,1,H,W), "ab" (B,2,H,W) and
  optionally "label" (B,) (-1 when unknown);
* ``decode(pred, method=None, **options) -> ab`` (B,2,h,w) in Lab units at the prediction's
  resolution (the pipeline upsamples it and joins the original L);
* ``confidence(pred) -> (B,1,h,w) in [0,1]`` or None for models without a distribution.

The trainer, evaluator, pipeline, exporter and web page use only this contract, so adding a
model touches one file in ``tinct/models`` and one config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import UsageError

__all__ = ["AB_SCALE", "ColorModel", "AbRegressionOrGrid", "register", "build_model", "registered_models", "model_class"]

Prediction = dict[str, torch.Tensor]
# The ab range of every regression head: ab = AB_SCALE * tanh(y) (or (2 s - 1) * AB_SCALE for a
# sigmoid output s), and regression losses compare ab / AB_SCALE. |a|, |b| of sRGB colors stay below 110.
AB_SCALE = 110.0
_REGISTRY: dict[str, type[ColorModel]] = {}


def register(name: str) -> Callable[[type[ColorModel]], type[ColorModel]]:
    """Class decorator: make a ColorModel buildable by ``name``."""

    def deco(cls: type[ColorModel]) -> type[ColorModel]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise UsageError(f"model name {name!r} is registered twice")
        cls.arch = name
        _REGISTRY[name] = cls
        return cls

    return deco


def registered_models() -> list[str]:
    """Names of every registered architecture."""
    _import_all()
    return sorted(_REGISTRY)


def model_class(name: str) -> type[ColorModel]:
    _import_all()
    if name not in _REGISTRY:
        raise UsageError(f"unknown model architecture {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def build_model(name: str, **config: Any) -> ColorModel:
    """Instantiate architecture ``name`` with its config (constructor keyword arguments).

    The model's 4-D weights are stored channels-last (NHWC). Outputs are the same up to float
    rounding, but oneDNN's convolutions, bilinear resizes and 1x1 heads run much faster on a
    CPU that way (the default's forward at 256^2 in 0.51x the time, a training step in 0.79x:
    ``python benchmarks/memory_format.py``; docs/experiments.md, 2026-12-03, second session).
    """
    cls = model_class(name)
    try:
        model = cls(**config)
    except TypeError as exc:
        raise UsageError(f"bad config for model {name!r}: {exc}") from exc
    return model.to(memory_format=torch.channels_last)


def _import_all() -> None:
    from . import catalog  # noqa: F401  (registers every model module)


class ColorModel(nn.Module):
    """Base class of every colorization model (see the module docstring for the contract)."""

    arch: str = "?"
    color_space: str = "lab"          # what the network predicts: "lab" or "yuv"
    head_kind: str = "regression"     # "regression" | "histogram" | "classes"
    decode_methods: tuple[str, ...] = ("identity",)
    default_decode: str = "identity"
    needs_labels: bool = False
    pad_multiple: int = 32            # inputs are padded to a multiple of this by ``predict``
    # config keys that change how the model trains, not the network it is: a run may start
    # (``init``) from weights whose config differs in them
    training_only_config: tuple[str, ...] = ()

    def __init__(self, **config: Any):
        super().__init__()
        self.config = dict(config)

    # -- to implement --------------------------------------------------------------------
    def forward(self, L: torch.Tensor) -> Prediction:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, pred: Prediction, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError  # pragma: no cover - abstract

    def decode(self, pred: Prediction, method: str | None = None, **options: Any) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    # -- shared helpers ------------------------------------------------------------------
    def confidence(self, pred: Prediction) -> torch.Tensor | None:
        return None

    def check_method(self, method: str | None, name: str | None = None) -> str:
        """The decode method to use (None: the default); an unknown one is a one-line error naming
        the model as ``name`` (default: its weights' name, else its architecture)."""
        from ..shipped import choose_decoder

        name = name or (getattr(self, "metadata", None) or {}).get("name") or self.arch
        return choose_decoder(self.decode_methods, self.default_decode, method, name)

    def train_inputs(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Extra ``forward`` inputs a training step draws from its batch (e.g. simulated color hints).

        The trainer calls ``model(batch["L"], **model.train_inputs(batch))``; none by default.
        """
        return {}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def pad_input(self, L: torch.Tensor) -> torch.Tensor:
        """L (B,1,H,W) -> L reflect-padded at the bottom and right to a multiple of ``pad_multiple``."""
        H, W = L.shape[-2:]
        m = self.pad_multiple
        ph, pw = (-H) % m, (-W) % m
        if not (ph or pw):
            return L
        mode = "reflect" if (H > ph and W > pw) else "replicate"
        return torch.nn.functional.pad(L, [0, pw, 0, ph], mode=mode)

    @property
    def reuses_features(self) -> bool:
        """Whether the model splits into ``features(L)`` and ``from_features(feats, size, ...)``, so
        that one photo's backbone features can serve many predictions (color hints being edited)."""
        return callable(getattr(self, "features", None)) and callable(getattr(self, "from_features", None))

    @torch.no_grad()
    def predict(self, L: torch.Tensor, method: str | None = None, with_confidence: bool = False,
                features: list[torch.Tensor] | None = None, with_pred: bool = False,
                network: Callable[..., Prediction] | None = None, **options: Any) -> dict[str, Any]:
        """L (B,1,H,W) in [0,100] -> {"ab": (B,2,H,W)[, "confidence": (B,1,H,W)]} at the input size.

        The input is reflect-padded to ``pad_multiple`` (``pad_input``) and the outputs cropped
        back. Keyword ``options`` named in ``forward_options`` go to ``forward`` (e.g.
        ``style_L``, ``hints``), the rest to ``decode`` (temperature, generator...). One forward
        serves both outputs. ``features``: this L's ``features(pad_input(L))``, computed before
        (only for models that ``reuses_features``). ``with_pred`` adds the raw prediction
        ("pred", at the padded input's grid) for callers that read its distribution. ``network``
        computes the forward pass instead of the module itself (a ``tinct.runtime.Runtime``'s
        ``forward``, e.g. onnxruntime).
        """
        H, W = L.shape[-2:]
        x = self.pad_input(L)
        fwd = {k: v for k, v in options.items() if k in self.forward_options}
        if features is not None:
            pred = self.from_features(features, x.shape[-2:], **fwd)
        else:
            pred = (network or self)(x, **fwd)
        out = {"ab": self.decode(pred, method, **{k: v for k, v in options.items() if k not in self.forward_options})}
        if with_confidence:
            conf = self.confidence(pred)
            if conf is None:
                raise UsageError(f"model {self.arch!r} predicts no distribution, so it has no confidence map")
            out["confidence"] = conf
        for k, v in out.items():
            if v.shape[-2:] != x.shape[-2:]:
                v = torch.nn.functional.interpolate(v.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)
            out[k] = v[..., :H, :W]
        if with_pred:
            out["pred"] = pred
        return out

    def color_distribution(self, pred: Prediction) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The predicted distribution over colors: (probabilities (B,K,h,w), ab of each of the K
        colors (K,2)), or None for models that predict colors directly. Used for palettes."""
        return None

    def predict_ab(self, L: torch.Tensor, method: str | None = None, **options: Any) -> torch.Tensor:
        """L (B,1,H,W) in [0,100] -> ab (B,2,H,W) at the input size (see ``predict``)."""
        return self.predict(L, method, **options)["ab"]

    forward_options: tuple[str, ...] = ()


class AbRegressionOrGrid(ColorModel):
    """Shared decoding for models whose head either regresses ab ({"ab"}) or predicts a
    histogram over fixed ab centers ({"logits"} over ``self.centers`` (K,2)): decode with any
    joint-histogram method of ``tinct.bins.decode_joint``; confidence = 1 - normalised entropy.
    """

    def setup_head(self, centers: torch.Tensor | None, persistent: bool = True) -> int:
        """Declare the head: ab regression (``centers`` None) or a histogram over ``centers`` (K,2).

        Sets the decode methods and registers the ``centers`` buffer; returns the number of
        output channels the network must produce (2 or K).
        """
        from .. import bins

        if centers is None:
            self.decode_methods, self.default_decode = ("identity",), "identity"
            return 2
        self.register_buffer("centers", centers, persistent=persistent)
        self.decode_methods, self.default_decode = bins.JOINT_METHODS, "annealed"
        return centers.shape[0]

    def decode(self, pred: Prediction, method: str | None = None, **options: Any) -> torch.Tensor:
        """Prediction -> ab (B,2,H,W) in Lab units. Options: ``temperature`` (annealed), ``generator`` (sample)."""
        from .. import bins

        method = self.check_method(method)
        if "ab" in pred:
            return pred["ab"]
        probs = bins.channel_softmax(pred["logits"])
        return bins.decode_joint(probs, self.centers, method,
                                 temperature=float(options.get("temperature", self.config["temperature"])),
                                 generator=options.get("generator"))

    def color_distribution(self, pred: Prediction) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(probabilities (B,K,H,W), ``centers`` (K,2)) for histogram heads; None for regression."""
        from .. import bins

        if "logits" not in pred:
            return None
        return bins.channel_softmax(pred["logits"]), self.centers

    def confidence(self, pred: Prediction) -> torch.Tensor | None:
        """(B,1,H,W) in [0,1] for histogram heads; None for regression."""
        from .. import bins

        if "logits" not in pred:
            return None
        return 1.0 - bins.entropy(bins.channel_softmax(pred["logits"]))
