"""The encoder families as plain reference models, and the registry that loads them by `model_type`."""

from attnlens.models.loading import ARCHITECTURES, load_model, model_type_of

__all__ = ["ARCHITECTURES", "load_model", "model_type_of"]
