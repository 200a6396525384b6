import sys

from occau.cli import main

sys.exit(main())
