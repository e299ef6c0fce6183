"""The control core's typed vocabulary, shared by the service, the players and every front door.

- :mod:`audionode.control.commands`: keys (who is asking, about which player) and the typed
  commands the service takes, already validated;
- :mod:`audionode.control.views`: the typed results the service returns;
- :mod:`audionode.control.events`: the one event vocabulary of a session's and a player's life.

Everything here is plain data (frozen msgspec structs): no I/O, no framework, no wire format.
Each front door parses its wire into these and maps them back in a pure module under
``audionode/protocol/`` (docs/ARCHITECTURE.md, "The walk of one command").
"""
