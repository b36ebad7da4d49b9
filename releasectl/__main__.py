from releasectl.cli import run

run()
