"""One module per decoder entry point: ``MAX_LEN``, ``seeds()`` and ``one_input(data)``."""
