"""The ``deepmark`` command: one subcommand per core capability (``main``) and the project commands (``store``)."""
