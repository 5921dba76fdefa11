"""The Textual console for dispatchers: screens, widgets, keys, settings, the grammar."""
