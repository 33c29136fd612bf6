"""``python -m rdiff``: the rdiff command."""

from rdiff.cli import main

if __name__ == "__main__":
    main()
