"""Builds and loads the optional oneDNN convolutions once, ahead of any run:

  pip install -e ".[onednn]" && python -m ssl_jax.tools.build_onednn

Exits with status 1, saying why, where they cannot be used here.
"""

import logging
import sys

from ssl_jax.models import onednn


def main() -> None:
  """Loads (building once) the library; exits 1 where it cannot."""
  logging.basicConfig(level=logging.INFO, format='%(message)s')
  if not onednn.load():
    sys.exit(
        'oneDNN convolutions unavailable (see the warning above); runs use '
        "XLA's convolutions."
    )
  print(
      'oneDNN convolutions built and loaded (native bfloat16: '
      f'{onednn.native_bf16()}).'
  )


if __name__ == '__main__':
  main()
