import sys

from vaultsched.cli.app import main

sys.exit(main())
