"""The node's persistent state: an SQLite file written off the event loop (docs/PERSISTENCE.md).

``schema.py`` (versions, migrations, the checks that refuse a foreign or corrupt file),
``records.py`` (what is stored, as typed records), ``writer.py`` (the writer thread) and
``store.py`` (:class:`Store`, the narrow interface the service talks to). The store knows the
control plane's typed state only: no front door, no wire format.
"""

from audionode.store.schema import SCHEMA_VERSION, StateFileError
from audionode.store.store import Store

__all__ = ["SCHEMA_VERSION", "StateFileError", "Store"]
