from flowscope.launch import run

run()
