"""rustok-ref: the RusToK reviewed architecture in Python, with the harness that checks its claims."""

__version__ = "0.1.0"
