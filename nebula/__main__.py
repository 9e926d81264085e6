import sys

from nebula.cli import main

sys.exit(main())
