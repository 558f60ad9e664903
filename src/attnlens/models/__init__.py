"""The encoder families as plain reference models, and the registry that loads them by `model_type`."""
