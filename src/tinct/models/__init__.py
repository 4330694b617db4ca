"""tinct's colorization models; each module registers its architecture by name."""

from .base import ColorModel, build_model, model_class, register, registered_models

__all__ = ["ColorModel", "build_model", "model_class", "register", "registered_models"]
