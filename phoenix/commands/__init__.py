"""The commands' flows, one module each, over a small typed :class:`~phoenix.commands.context.Context`.

``phoenix/cli.py`` parses options, chooses the environment (real PVE or a simulator) and calls these.
"""
