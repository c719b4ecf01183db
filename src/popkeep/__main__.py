"""``python -m popkeep`` runs the command line."""

from popkeep.cli import main

raise SystemExit(main())
