"""Calibrate a SAM2 model into a precision plan (same as ``mixqsam2 calibrate``).

    python calib/calibrate.py --model pico --images DIR --videos DIR --budget-bits 6 --out plan.json
    python calib/calibrate.py --recipe calib/recipes/pico-synthetic.yaml --out plan.json

Recipes (``calib/recipes/*.yaml``) hold a device profile's budget and settings and the
calibration data; options on the command line win over the recipe.
"""

import sys

from mixqsam2.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["calibrate", *sys.argv[1:]]))
