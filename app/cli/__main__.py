"""`python -m app.cli`, the same as `cact` (the tests and benchmarks run it so)."""

from app.cli import main

if __name__ == "__main__":
    main()
