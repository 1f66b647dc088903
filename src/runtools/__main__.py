"""``python -m runtools`` is the ``runtools`` command."""

from runtools.cli import main

main()
