"""Calibrate a SAM2 model into a precision plan (same as ``mixqsam2 calibrate``).

    python calib/calibrate.py --model pico --images DIR --videos DIR --budget-bits 6 --out plan.json
"""

import sys

from mixqsam2.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["calibrate", *sys.argv[1:]]))
