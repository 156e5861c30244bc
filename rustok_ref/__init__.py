"""rustok-ref: the RusToK reviewed architecture in Python, and the harness that checks it."""

__version__ = "0.1.0"
