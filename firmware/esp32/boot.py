# Runs first at every boot. Keep it tiny: a failure here would stop main.py from starting.
import sys

sys.path.append("/lib")
