"""Subcommands of the ``rbnodia`` CLI, one module each, each declaring its
subcommands as `rbnodia.commands.arguments.Command` objects in ``COMMANDS``.
"""
