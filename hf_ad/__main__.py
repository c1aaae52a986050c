"""`python -m hf_ad COMMAND ...` is `hf-ad COMMAND ...`; what `accelerate launch -m hf_ad train ...` runs.

Works from an installed package (no checkout needed), in every process accelerate starts.
"""

import sys

from hf_ad.cli import main

if __name__ == "__main__":
    sys.exit(main())
