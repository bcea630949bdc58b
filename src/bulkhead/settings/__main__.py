"""`python -m bulkhead.settings`: print the README's configuration table."""

import sys

from bulkhead.settings import markdown_table

sys.stdout.write(markdown_table())
