import sys

from abcl.cli import main

sys.exit(main())
