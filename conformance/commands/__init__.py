"""One module per CLI command (argparse and printing only); the work is done by the layers below."""
