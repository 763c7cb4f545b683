"""Coverage-guided fuzzing (atheris) of every decoder entry point; see docs/RELIABILITY.md, "Fuzzing".

``python -m fuzz TARGET --seconds S`` runs one target (``python -m fuzz --list`` names them). Each target module
in ``fuzz/targets/`` feeds bytes to one entry point the way flowscope does (a file through the registered
reader, a batch of datagrams through the collector's decoder, ...) and holds it to the project's rule for bad
input: counted skips or one ``FlowscopeError``, never another exception, a hang or unbounded memory.
"""
