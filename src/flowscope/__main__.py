from flowscope.cli import run

run()
