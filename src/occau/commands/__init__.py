"""Sub-commands of the ``occau`` CLI, one module each (see ``occau.cli``)."""
