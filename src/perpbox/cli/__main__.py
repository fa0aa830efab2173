"""``python -m perpbox.cli``: the ``perpbox`` command without the console script (the tests start the
server this way, so a checkout runs its own code rather than whatever is installed)."""

from perpbox.cli import main

main()
