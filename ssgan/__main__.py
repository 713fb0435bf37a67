"""`python -m ssgan` (what dvc.yaml runs) and the `ssgan` console script: the same command line.

The CPU kernels are pinned here, before anything imports torch (pipelines/kernels.py)."""


def main() -> None:
    from pipelines.kernels import pin_cpu_kernels

    pin_cpu_kernels()
    from pipelines.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
