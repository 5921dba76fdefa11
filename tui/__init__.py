"""The Textual console for dispatchers, and the `cadterm` command line."""
