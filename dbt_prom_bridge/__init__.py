"""dbt-prom-bridge: dbt source freshness as a first-class Prometheus signal.

The package is a library first; the ``dbt-prom`` CLI is a thin layer over it. Importing it is
cheap: dbt is imported only by :mod:`dbt_prom_bridge.runner`, when a command actually runs dbt.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
