"""Exception classes with two bases (raised by the native module)."""


class AxisError(ValueError, IndexError):
    """An axis argument is out of range for the array's dimensions."""


class FormatError(ValueError, RuntimeError):
    """A file is malformed (raised by the loaders at ``load()`` time)."""


class IntegrityError(FormatError):
    """A file's SHA-256 digest or Ed25519 signature does not match (raised by
    ``load(..., verify=...)`` before parsing, and by ``oxmx.security.verify``)."""
