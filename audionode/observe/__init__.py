"""What operators watch: the Prometheus metrics of ``GET /metrics`` (docs/OPERATIONS.md).

Runs in the control process; it reads the service's state and the engines' reports at scrape
time and never imports a web framework, PyAV or the bot-side client library.
"""

from audionode.observe.metrics import NodeMetrics

__all__ = ["NodeMetrics"]
