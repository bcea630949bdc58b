"""``python -I -B -m bulkhead.runtime.sandbox PLAN MODULE [ARG...]``: see `_enter`."""

import sys

from bulkhead.runtime.sandbox._enter import main

sys.exit(main(sys.argv[1:]))
