"""`python -m dlcfn` runs the CLI."""

from dlcfn.cli import main

if __name__ == "__main__":
    main()
