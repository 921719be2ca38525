"""``python -m phoenix`` runs the CLI."""
from phoenix.cli import main

main()
