"""edge-age: face age-and-gender models from training to phones."""
from edge_age.registry import AgeGenderModel, InputSpec, create_model, list_models, model_from_config, register_model

__all__ = ["AgeGenderModel", "InputSpec", "create_model", "list_models", "model_from_config", "register_model"]
__version__ = "0.1.0"
