"""Stock-source adapters and the contract they implement."""

from adapters.base import Rejection, SourceContext, SourceResult, StockSource

__all__ = ["Rejection", "SourceContext", "SourceResult", "StockSource"]
