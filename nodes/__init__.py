"""The built-in node families, each a package found through the `flowloom.nodes` entry points."""
