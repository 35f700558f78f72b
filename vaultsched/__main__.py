import sys

from vaultsched.cli import main

sys.exit(main())
