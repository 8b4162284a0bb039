"""One module per method; the public names are re-exported by the package."""
