"""The one exception type for bad user input (config values, paths, files, data)."""


class ConfigError(ValueError):
    """Raised before training starts; entry points print it as one line and exit non-zero."""
