"""`python -m slmexp` == `slmexp`."""

from slmexp.cli import main

main()
