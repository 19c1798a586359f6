import sys

from voxkey.cli import main

sys.exit(main())
