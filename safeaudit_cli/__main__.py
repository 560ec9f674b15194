"""``python -m safeaudit_cli``: the ``safeaudit`` command without the installed script."""

from safeaudit_cli import main

main()
