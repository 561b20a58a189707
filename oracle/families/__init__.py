"""One module per model family; each defines FIXTURES, a list of oracle.fixture.Fixture.

Adding a family to the oracle is adding one file here (see oracle/README.md)."""
