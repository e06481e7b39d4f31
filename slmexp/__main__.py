"""`python -m slmexp` == `slmexp`."""

from slmexp.cli import main

if __name__ == "__main__":  # vLLM's spawned workers import __main__: they must not start the job again
    main()
