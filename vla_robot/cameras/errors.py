"""Camera failures that callers handle differently from a slow frame."""


class CameraDisconnected(RuntimeError):
    """The device went away (unplugged, driver reset); reconnecting may help."""
