import sys

from token_billing.cli import main

sys.exit(main())
