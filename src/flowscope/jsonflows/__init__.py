"""Flow records as JSON lines: flowscope's own ``-o x.jsonl`` and GoFlow2's ``-format=json`` output."""
