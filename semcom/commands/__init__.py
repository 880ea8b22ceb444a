"""Subcommands of the ``semcom`` console script, one module each.

Every module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
:mod:`semcom.cli` lists the modules in ``COMMANDS``.
"""
