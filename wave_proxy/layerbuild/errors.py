"""The one exception the layer builder raises for problems a user can act on."""


class LayerBuildError(Exception):
    """A missing tool, package or input; the message says what to do about it."""
