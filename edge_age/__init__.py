"""edge-age: face age-and-gender models from training to phones."""
__all__ = ["AgeGenderModel", "InputSpec", "create_model", "list_models", "model_from_config", "register_model"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """The registry's names, imported on first use: a process that only runs an exported file (a benchmark's
    measuring process, a board) never loads torch."""
    if name in __all__:
        from edge_age import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'edge_age' has no attribute {name!r}")
