"""`python -m benchmarks` (what `make bench` runs): the benchmark against the serving peers."""

import argparse
import sys

from benchmarks import run

parser = argparse.ArgumentParser(prog="python -m benchmarks", description=run.__doc__.split("\n\n")[0])
run.add_arguments(parser)
sys.exit(run.run(parser.parse_args()))
