"""`DataError`, the one exception every bad input in `jaxmlp.data` raises."""


class DataError(ValueError):
    """Bad or missing input data; the message names the file (or data set) and the problem."""
