"""The errors of what a user gave: the base the command line turns into one line, and bad data files."""


class UserError(ValueError):
    """Something a user gave (a file, a key, a value, a name) is wrong; the message names it and says what
    was expected. The command line prints it as one line and exits with code 2."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class DataFormatError(UserError):
    """A data file or directory does not match the expected layout, keys, shapes or dtypes."""
