"""taskflow: run a Task's steps one after another in a single pod."""

__version__ = "0.2.0"
