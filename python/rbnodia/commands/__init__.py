"""Subcommands of the ``rbnodia`` CLI, one module each, each exposing
``register(subparsers)``.
"""
