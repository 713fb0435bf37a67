"""`python -m ssgan`: the same command line as the `ssgan` console script."""
from pipelines.cli import main

if __name__ == "__main__":
    main()
