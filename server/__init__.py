"""The reference dispatch backend: HTTP commands and queries, a WebSocket event stream,
dispatch rules, a durable event store and the hub that fans events out.

Import `cadterm.server.run.serve` to run it, or build one in-process with
`cadterm.server.run.build_server` (tests and the demo do).
"""
