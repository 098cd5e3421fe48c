"""The errors of what a user gave: the base the command line turns into one line, and bad data files."""


class UserError(ValueError):
    """Something a user gave (a file, a key, a value, a name) is wrong; the message names it and says what
    was expected. The command line prints it as one line and exits with code 2."""


class DataFormatError(UserError):
    """A data file or directory does not match the expected layout, keys, shapes or dtypes."""
