"""driftwatch: model drift monitoring. ``driftwatch.Client`` is the logging SDK."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from driftwatch.sdk.client import Client

__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> Any:
    # The SDK is imported on first use so that ``import driftwatch`` stays light for services.
    if name == "Client":
        from driftwatch.sdk.client import Client

        return Client
    raise AttributeError(f"module 'driftwatch' has no attribute {name!r}")
