"""The one exception type the data package raises for malformed input data."""


class DataFormatError(ValueError):
    """A data file or directory does not match the expected layout, keys, shapes or dtypes."""
