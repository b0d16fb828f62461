"""Monthly token usage reports for finance and customer success.

Reads one month of the billing database's daily rollup through a read-only role, writes
per customer and for the whole platform a CSV, two PNG charts and an HTML page, checks
its totals against the billing API and publishes the month atomically.
"""

__version__ = "1.0.0"

__all__ = ["__version__"]
